"""The backup lifecycle: request, execute, abort, delete, verify, reap.

A backup is ``completed`` only when every selected destination holds the whole artifact
with the recorded size; anything else ends ``failed`` with a message naming what went
wrong, and no partial artifact is left under a final key.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from alerts.models import AlertKind
from alerts.services import alert_raise, alert_resolve
from backups.container import container_source
from backups.engines import ConnectionSpec, EngineError, EngineUnavailable, get_engine
from backups.keys import organisation_key
from backups.models import (
    ACTIVE_STATUSES,
    Backup,
    BackupCopy,
    BackupKind,
    BackupMethod,
    BackupStatus,
    BackupTrigger,
    CopyStatus,
    Phase,
)
from backups.pipeline import PipelineCancelled, PipelineError, PipelineOptions, run_pipeline
from config.errors import Conflict, InvalidInput
from destinations.models import Destination
from destinations.storage import (
    artifact_size,
    delete_artifact,
    discard_partial_artifacts,
    open_sink,
)
from organizations.models import Database, Environment

logger = logging.getLogger(__name__)

KIND_SYNONYMS = {"db": BackupKind.DATABASE, "database": BackupKind.DATABASE}
COMPRESSION_EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}
# How often the running task writes progress and its heartbeat to the row.
PROGRESS_INTERVAL = 0.5
ABORT_CHECK_INTERVAL = 1.0


# --- requesting ----------------------------------------------------------------------------


def normalise_kind(kind: str) -> str:
    kind = KIND_SYNONYMS.get(kind, kind)
    if kind not in (BackupKind.DATABASE, BackupKind.FILESYSTEM, BackupKind.FULL):
        raise InvalidInput(
            f"Unknown backup type {kind!r}: use db, full or filesystem.",
            fields={"type": ["Must be one of db, full, filesystem."]},
        )
    return kind


def backup_request(
    *,
    environment: Environment,
    kind: str,
    database: Database | None = None,
    destination_ids: list | None = None,
    description: str = "",
    trigger: str = BackupTrigger.MANUAL,
    user=None,
    schedule=None,
    schedule_rules: list | None = None,
) -> list[Backup]:
    """Create ``scheduled`` backups and enqueue their work once the transaction commits.

    ``database`` kind makes one backup per database of the environment (or just the one
    given); ``filesystem`` and ``full`` make one for the environment.
    """
    kind = normalise_kind(kind)
    destinations = _destinations_for(environment, destination_ids, schedule)
    targets = _targets_for(environment, kind, database)
    created: list[Backup] = []
    with transaction.atomic():
        for target_db in targets:
            created.append(
                _create_backup(
                    environment=environment,
                    kind=kind,
                    database=target_db,
                    destinations=destinations,
                    description=description or _default_description(trigger),
                    trigger=trigger,
                    user=user,
                    schedule=schedule,
                    schedule_rules=schedule_rules or [],
                    several=len(targets) > 1,
                )
            )
        transaction.on_commit(lambda: [enqueue_backup(backup) for backup in created])
    return created


def _default_description(trigger: str) -> str:
    return {
        BackupTrigger.MANUAL: "Manual backup",
        BackupTrigger.SCHEDULED: "Scheduled backup",
        BackupTrigger.SAFETY: "Safety backup before a restore",
    }.get(trigger, "Backup")


def _destinations_for(environment, destination_ids, schedule) -> list[Destination]:
    organisation = environment.project.organisation
    owned = Destination.objects.filter(organisation=organisation)
    if destination_ids:
        wanted = {str(d) for d in destination_ids}
        valid = {str(d.id): d for d in owned if str(d.id) in wanted or d.name in wanted}
        found = {
            key for key in wanted if key in valid or any(d.name == key for d in valid.values())
        }
        missing = sorted(wanted - found)
        if missing:
            raise InvalidInput(
                f"Unknown destination: {', '.join(missing)}.",
                fields={
                    "destination": [f"No destination {m!r} in this organisation." for m in missing]
                },
            )
        return list(valid.values())
    if schedule is not None:
        chosen = list(schedule.destinations.all())
        if chosen:
            return chosen
    chosen = list(owned.filter(is_default=True)) or list(owned[:1])
    if not chosen:
        raise InvalidInput(
            "This organisation has no backup destination yet: create one first.",
            fields={"destination": ["No destination configured."]},
        )
    return chosen


def _targets_for(environment, kind, database) -> list[Database | None]:
    if kind == BackupKind.DATABASE:
        if database is not None:
            return [database]
        databases = list(environment.databases.order_by("name"))
        if not databases:
            raise InvalidInput(
                "This environment has no database to back up.", fields={"type": ["No database."]}
            )
        return databases
    if kind == BackupKind.FILESYSTEM and not environment.files_path:
        raise InvalidInput(
            "This environment has no files directory to back up.",
            fields={"type": ["The environment has no files directory."]},
        )
    if (
        kind == BackupKind.FULL
        and not environment.files_path
        and not environment.databases.exists()
    ):
        raise InvalidInput(
            "This environment has neither databases nor files.",
            fields={"type": ["Nothing to back up."]},
        )
    return [None]


def backup_name(environment: Environment, created_at: datetime, suffix: str = "") -> str:
    """``{organisation}-{project}-{environment}-{createdAt with ':' and '.' as '-'}Z``."""
    stamp = created_at.astimezone(UTC)
    text = stamp.strftime("%Y-%m-%dT%H-%M-%S-") + f"{stamp.microsecond // 1000:03d}Z"
    project = environment.project
    base = f"{project.organisation.slug}-{project.slug}-{environment.slug}-{text}"
    return f"{base}-{suffix}" if suffix else base


def _create_backup(
    *,
    environment,
    kind,
    database,
    destinations,
    description,
    trigger,
    user,
    schedule,
    schedule_rules,
    several,
) -> Backup:
    if (
        database is None
        and Backup.objects.filter(
            environment=environment, kind=kind, status__in=ACTIVE_STATUSES
        ).exists()
    ):
        raise Conflict(f"A {kind} backup of {environment} is already running.")
    created_at = timezone.now()
    suffix = ""
    if kind == BackupKind.DATABASE and several:
        suffix = database.slug
    elif kind != BackupKind.DATABASE:
        suffix = kind
    name = backup_name(environment, created_at, suffix)
    while Backup.objects.filter(name=name).exists():
        name = f"{name}-{uuid.uuid4().hex[:4]}"
    engine = database.engine if database else _full_engine(environment, kind)
    try:
        with transaction.atomic():
            backup = Backup.objects.create(
                organisation=environment.project.organisation,
                environment=environment,
                database=database,
                name=name,
                description=description[:500],
                kind=kind,
                method=BackupMethod.ARCHIVE
                if kind == BackupKind.FILESYSTEM
                else BackupMethod.LOGICAL,
                engine=engine,
                engine_version=(database.version if database else ""),
                trigger=trigger,
                schedule=schedule,
                schedule_rules=schedule_rules,
                requested_by=user if getattr(user, "pk", None) else None,
                created_at=created_at,
            )
    except IntegrityError as exc:
        running = Backup.objects.filter(database=database, status__in=ACTIVE_STATUSES).first()
        raise Conflict(
            f"A backup of {database} is already running"
            + (f" ({running.name})." if running else ".")
        ) from exc
    backup.destinations.set(destinations)
    return backup


def _full_engine(environment, kind) -> str:
    if kind == BackupKind.FILESYSTEM:
        return "files"
    first = environment.databases.order_by("name").first()
    return first.engine if first else "files"


def enqueue_backup(backup: Backup) -> None:
    task_id = async_task(
        "backups.tasks.run_backup",
        str(backup.id),
        task_name=f"backup {backup.name}",
        group="backups",
    )
    Backup.objects.filter(pk=backup.pk).update(task_id=task_id or "")


# --- executing -----------------------------------------------------------------------------


def connection_spec_for(database: Database) -> ConnectionSpec:
    return ConnectionSpec(
        engine=database.engine,
        host=database.host,
        port=database.port,
        user=database.username,
        password=database.password,
        name=database.database_name,
        options=dict(database.options or {}),
    )


def files_spec_for(environment: Environment) -> ConnectionSpec:
    return ConnectionSpec(engine="files", name=environment.files_path)


class _FinishingReader:
    """Reads a running dump; at its end waits for the tool so a failed exit fails the read."""

    def __init__(self, dump, on_end: Callable[[], None]):
        self._dump = dump
        self._on_end = on_end
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        data = self._dump.stdout.read(size)
        if not data and not self._ended:
            self._ended = True
            self._dump.finish()
            self._on_end()
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def fileno(self) -> int:
        return self._dump.stdout.fileno()

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._dump.stdout.close()


@dataclass
class _Source:
    """What the backup reads from: one dump, one tar, or a container of several."""

    extension: str
    estimate: int | None = None
    engine_version: str = ""
    row_counts: dict = field(default_factory=dict)
    dumps: list = field(default_factory=list)
    dump_ended_at: float | None = None
    stream: BinaryIO | None = None

    def open_dump(self, engine, spec, prefix: str = "") -> _FinishingReader:
        dump = engine.open_dump(spec)
        self.dumps.append(dump)
        for table, count in (dump.row_counts or {}).items():
            self.row_counts[f"{prefix}{table}"] = count
        return _FinishingReader(dump, self._mark_ended)

    def _mark_ended(self) -> None:
        self.dump_ended_at = time.monotonic()

    def kill(self) -> None:
        for dump in self.dumps:
            try:
                dump.kill()
            except Exception:  # noqa: BLE001 - best effort while failing anyway
                logger.exception("could not kill a dump")


def _prepare_source(backup: Backup) -> _Source:
    if backup.kind == BackupKind.DATABASE:
        database = backup.database
        if database is None:
            raise EngineError("The database of this backup no longer exists.")
        engine = get_engine(database.engine)
        engine.require_tools()
        spec = connection_spec_for(database)
        source = _Source(
            extension=engine.extension,
            estimate=engine.estimate_size(spec),
            engine_version=engine.server_version(spec),
        )
        source.stream = source.open_dump(engine, spec)
        return source
    if backup.kind == BackupKind.FILESYSTEM:
        engine = get_engine("files")
        spec = files_spec_for(backup.environment)
        source = _Source(extension=engine.extension, estimate=engine.estimate_size(spec))
        source.stream = source.open_dump(engine, spec)
        return source
    return _prepare_full_source(backup)


def _prepare_full_source(backup: Backup) -> _Source:
    """Every database and the files, as members of one container artifact."""
    environment = backup.environment
    source = _Source(extension="sbxc", estimate=0)
    members = []
    versions = []
    for database in environment.databases.order_by("slug"):
        engine = get_engine(database.engine)
        engine.require_tools()
        spec = connection_spec_for(database)
        source.estimate += engine.estimate_size(spec) or 0
        versions.append(f"{database.slug}:{engine.server_version(spec)}")
        member = f"database/{database.slug}.{engine.extension}"
        members.append(
            (member, lambda e=engine, s=spec, p=f"{database.slug}/": source.open_dump(e, s, p))
        )
    if environment.files_path:
        engine = get_engine("files")
        spec = files_spec_for(environment)
        source.estimate += engine.estimate_size(spec) or 0
        members.append(("files.tar", lambda e=engine, s=spec: source.open_dump(e, s)))
    source.engine_version = ", ".join(versions)
    source.stream = container_source(members)
    return source


def artifact_key(backup: Backup, source_extension: str, options: PipelineOptions) -> str:
    environment = backup.environment
    project = environment.project
    extension = f".{source_extension}" + COMPRESSION_EXTENSIONS[options.compression]
    if options.encryption_key:
        extension += ".enc"
    return (
        f"{project.organisation.slug}/{project.slug}/{environment.slug}/{backup.kind}/"
        f"{backup.name}{extension}"
    )


def pipeline_options_for(backup: Backup) -> PipelineOptions:
    key = organisation_key(backup.organisation)
    return PipelineOptions(
        compression=settings.STRONGBOX_COMPRESSION,
        level=settings.STRONGBOX_COMPRESSION_LEVEL,
        encryption_key=key[1] if key else None,
        key_id=key[0] if key else "",
    )


class _Phases:
    """Phase timings as seed 004's ``steps.details`` shows them."""

    def __init__(self):
        self.items: list[dict] = []

    def start(self, name: str) -> dict:
        item = {"name": name, "status": "RUNNING", "started_at": timezone.now().isoformat()}
        self.items.append(item)
        return item

    @staticmethod
    def finish(item: dict, status: str = "SUCCESS", ended: datetime | None = None) -> None:
        ended = ended or timezone.now()
        item["status"] = status
        item["finished_at"] = ended.isoformat()
        started = datetime.fromisoformat(item["started_at"])
        item["duration_sec"] = round((ended - started).total_seconds(), 3)

    def fail_running(self) -> None:
        for item in self.items:
            if item["status"] == "RUNNING":
                self.finish(item, "ERROR")


def _update(backup: Backup, **fields) -> None:
    """Write fields with a queryset update (no save(): other processes write the row too)."""
    for name, value in fields.items():
        setattr(backup, name, value)
    fields["updated_at"] = timezone.now()
    Backup.objects.filter(pk=backup.pk).update(**fields)


def backup_claim(*, backup_id) -> Backup | None:
    """Atomically move a backup from scheduled to in-progress; None if someone else did."""
    now = timezone.now()
    claimed = Backup.objects.filter(pk=backup_id, status=BackupStatus.SCHEDULED).update(
        status=BackupStatus.IN_PROGRESS, started_at=now, heartbeat_at=now, updated_at=now
    )
    if claimed != 1:
        return None
    return Backup.objects.select_related("environment__project__organisation", "database").get(
        pk=backup_id
    )


def backup_execute(*, backup: Backup) -> Backup:
    """Run a claimed backup to its end state. Never leaves it in-progress."""
    phases = _Phases()
    try:
        _execute(backup, phases)
    except Exception as exc:
        logger.exception("backup %s failed unexpectedly", backup.id)
        phases.fail_running()
        _fail(backup, f"Unexpected error: {exc}", phases)
    backup.refresh_from_db()
    return backup


def _execute(backup: Backup, phases: _Phases) -> None:
    dump_phase = phases.start(Phase.DUMP)
    try:
        source = _prepare_source(backup)
    except EngineUnavailable as exc:
        phases.finish(dump_phase, "ERROR")
        _update(
            backup,
            status=BackupStatus.NOT_SUPPORTED,
            message=str(exc),
            phases=phases.items,
            completed_at=timezone.now(),
        )
        return
    except EngineError as exc:
        phases.finish(dump_phase, "ERROR")
        _fail(backup, f"The dump could not start: {exc}", phases)
        return

    options = pipeline_options_for(backup)
    key = artifact_key(backup, source.extension, options)
    destinations = list(backup.destinations.all())
    copies = {}
    sinks = []
    for destination in destinations:
        copy, _ = BackupCopy.objects.update_or_create(
            backup=backup,
            destination=destination,
            defaults={"key": key, "status": CopyStatus.UPLOADING, "error": ""},
        )
        copies[str(destination.id)] = copy
        try:
            sinks.append(open_sink(destination, key, name=str(destination.id)))
        except Exception as exc:  # noqa: BLE001 - a destination we cannot even open
            _mark_copy(copy, CopyStatus.FAILED, error=f"could not start the upload: {exc}")
    compress_phase = phases.start(Phase.COMPRESS)
    upload_phase = phases.start(Phase.UPLOAD)
    _update(
        backup,
        phase=Phase.DUMP,
        phases=phases.items,
        bytes_total=source.estimate,
        engine_version=source.engine_version,
        compression=options.compression,
        encrypted=bool(options.encryption_key),
        key_id=options.key_id,
        row_counts=source.row_counts,
    )
    if not sinks:
        source.kill()
        phases.fail_running()
        _fail(backup, _copies_message(copies), phases)
        return

    cancel = _watch_for_abort(backup)
    started = time.monotonic()
    try:
        result = run_pipeline(
            source.stream, sinks, options, progress=cancel.progress, cancel=cancel.event
        )
    except PipelineCancelled:
        source.kill()
        phases.fail_running()
        _set_copies(copies.values(), CopyStatus.FAILED, "aborted")
        _update(
            backup,
            status=BackupStatus.ABORTED,
            message="Aborted on request; partial artifacts were removed.",
            phases=phases.items,
            completed_at=timezone.now(),
        )
        return
    except PipelineError as exc:
        source.kill()
        phases.fail_running()
        _set_copies(copies.values(), CopyStatus.FAILED, str(exc))
        _fail(backup, f"The backup failed: {exc}", phases)
        return
    finally:
        source.kill()

    ended = timezone.now()
    if source.dump_ended_at is not None:
        dump_end = ended - timedelta(seconds=time.monotonic() - source.dump_ended_at)
        phases.finish(dump_phase, ended=min(dump_end, ended))
    else:
        phases.finish(dump_phase, ended=ended)
    phases.finish(compress_phase, ended=ended)
    phases.finish(upload_phase, "ERROR" if result.failed else "SUCCESS", ended=ended)
    logger.info(
        "backup %s streamed %d bytes in, %d out in %.1fs",
        backup.id,
        result.bytes_in,
        result.bytes_out,
        time.monotonic() - started,
    )

    verify_phase = phases.start(Phase.VERIFY)
    _update(backup, phase=Phase.VERIFY, phases=phases.items, bytes_done=result.bytes_in)
    for name, error in result.failed.items():
        _mark_copy(copies[name], CopyStatus.FAILED, error=error)
    for name in result.committed:
        _verify_fresh_copy(copies[name], result.bytes_out, result.sha256)

    failed = [c for c in copies.values() if c.status != CopyStatus.STORED]
    phases.finish(verify_phase, "ERROR" if failed else "SUCCESS")
    common = {
        "size": result.bytes_out,
        "checksum_sha256": result.sha256,
        "row_counts": source.row_counts,
        "completed_at": timezone.now(),
        "bytes_done": result.bytes_in,
    }
    if failed:
        _fail(backup, _copies_message(copies), phases, **common)
        return
    _update(
        backup, status=BackupStatus.COMPLETED, phase="", message="", phases=phases.items, **common
    )
    if backup.database_id and source.engine_version:
        Database.objects.filter(pk=backup.database_id).update(version=source.engine_version)
    alert_resolve(organisation=backup.organisation, kind=AlertKind.BACKUP_FAILED, backup=backup)


def _verify_fresh_copy(copy: BackupCopy, expected_size: int, checksum: str) -> None:
    try:
        stored = artifact_size(copy.destination, copy.key)
    except Exception as exc:  # noqa: BLE001 - any storage error makes this copy bad
        _mark_copy(copy, CopyStatus.FAILED, error=f"could not check the stored copy: {exc}")
        return
    if stored != expected_size:
        _discard(copy)
        _mark_copy(
            copy,
            CopyStatus.FAILED,
            error=f"stored size {stored} does not match the {expected_size} bytes written",
        )
        return
    now = timezone.now()
    _mark_copy(
        copy,
        CopyStatus.STORED,
        size=expected_size,
        checksum_sha256=checksum,
        file_exists=True,
        last_verified_at=now,
    )


def _discard(copy: BackupCopy) -> None:
    try:
        delete_artifact(copy.destination, copy.key)
    except Exception:  # noqa: BLE001
        logger.exception("could not remove a bad copy %s", copy.key)


def _mark_copy(copy: BackupCopy, status: str, **fields) -> None:
    fields["status"] = status
    if status == CopyStatus.FAILED:
        fields["file_exists"] = False
    for name, value in fields.items():
        setattr(copy, name, value)
    BackupCopy.objects.filter(pk=copy.pk).update(**fields)


def _set_copies(copies, status, error) -> None:
    for copy in copies:
        if copy.status == CopyStatus.UPLOADING:
            _mark_copy(copy, status, error=error)


def _copies_message(copies: dict) -> str:
    failed = [c for c in copies.values() if c.status != CopyStatus.STORED]
    good = [c for c in copies.values() if c.status == CopyStatus.STORED]
    parts = [f"{c.destination.name}: {c.error or 'failed'}" for c in failed]
    message = "Failed destinations: " + "; ".join(parts) + "."
    if good:
        message += " Stored completely in: " + ", ".join(c.destination.name for c in good) + "."
    return message


def _fail(backup: Backup, message: str, phases: _Phases, **fields) -> None:
    _update(
        backup,
        status=BackupStatus.FAILED,
        message=message[-8000:],
        phases=phases.items,
        completed_at=fields.pop("completed_at", timezone.now()),
        **fields,
    )
    alert_raise(
        organisation=backup.organisation,
        kind=AlertKind.BACKUP_FAILED,
        title=f"Backup {backup.name} failed",
        message=message[-2000:],
        environment=backup.environment,
        backup=backup,
        severity="critical",
    )


@dataclass
class _AbortWatch:
    """Persists progress and the heartbeat; turns an ``aborting`` row into a cancel."""

    backup: Backup
    event: object
    last_write: float = 0.0
    last_check: float = 0.0

    def progress(self, progress) -> None:
        now = time.monotonic()
        if now - self.last_write >= PROGRESS_INTERVAL:
            self.last_write = now
            Backup.objects.filter(pk=self.backup.pk).update(
                bytes_done=progress.bytes_in, heartbeat_at=timezone.now()
            )
        if now - self.last_check >= ABORT_CHECK_INTERVAL:
            self.last_check = now
            status = (
                Backup.objects.filter(pk=self.backup.pk).values_list("status", flat=True).first()
            )
            if status == BackupStatus.ABORTING:
                self.event.set()


def _watch_for_abort(backup: Backup) -> _AbortWatch:
    return _AbortWatch(backup=backup, event=threading.Event())


# --- abort, delete, verify, reap ---------------------------------------------------------


def backup_abort(*, backup: Backup) -> Backup:
    now = timezone.now()
    if Backup.objects.filter(pk=backup.pk, status=BackupStatus.SCHEDULED).update(
        status=BackupStatus.ABORTED, completed_at=now, message="Aborted before it started."
    ):
        backup.refresh_from_db()
        return backup
    if not Backup.objects.filter(pk=backup.pk, status=BackupStatus.IN_PROGRESS).update(
        status=BackupStatus.ABORTING, updated_at=now
    ):
        backup.refresh_from_db()
        if backup.status != BackupStatus.ABORTING:
            raise Conflict(f"Only a running backup can be aborted; this one is {backup.status}.")
    backup.refresh_from_db()
    return backup


def backup_delete(*, backup: Backup) -> Backup:
    """Mark for deletion and clean every destination asynchronously; the row stays for audit."""
    from restores.models import Restore

    if backup.status in (BackupStatus.DELETING, BackupStatus.DELETED):
        return backup
    if backup.status in ACTIVE_STATUSES:
        raise Conflict("This backup is still running: abort it before deleting it.")
    if Restore.objects.filter(backup=backup, status__in=["scheduled", "in-progress"]).exists():
        raise Conflict("This backup is being restored; delete it when the restore has finished.")
    updated = Backup.objects.filter(pk=backup.pk, status=backup.status).update(
        status=BackupStatus.DELETING, updated_at=timezone.now()
    )
    if not updated:
        raise Conflict("This backup changed meanwhile; try again.")
    transaction.on_commit(
        lambda: async_task(
            "backups.tasks.delete_backup", str(backup.id), task_name=f"delete {backup.name}"
        )
    )
    backup.refresh_from_db()
    return backup


def backup_delete_artifacts(*, backup: Backup) -> Backup:
    errors = []
    for copy in backup.copies.select_related("destination").exclude(status=CopyStatus.DELETED):
        try:
            delete_artifact(copy.destination, copy.key)
            discard_partial_artifacts(copy.destination, copy.key)
        except Exception as exc:  # noqa: BLE001 - reported, retried later
            errors.append(f"{copy.destination.name}: {exc}")
            continue
        _mark_copy(copy, CopyStatus.DELETED, file_exists=False)
    if errors:
        _update(backup, message="Deletion is pending; it failed on " + "; ".join(errors))
    else:
        _update(backup, status=BackupStatus.DELETED, message="Deleted from every destination.")
    return backup


def backup_verify(*, backup: Backup) -> bool:
    """Re-read every stored copy and compare its size and checksum with the recorded ones."""
    from backups.pipeline import sha256_of
    from destinations.storage import ArtifactMissing, open_artifact_stream

    problems = []
    now = timezone.now()
    for copy in backup.copies.select_related("destination").filter(status=CopyStatus.STORED):
        try:
            with open_artifact_stream(copy.destination, copy.key) as stream:
                digest, size = sha256_of(stream)
        except ArtifactMissing:
            problems.append(f"{copy.destination.name}: the artifact is missing")
            BackupCopy.objects.filter(pk=copy.pk).update(
                file_exists=False, last_verified_at=now, error="missing"
            )
            continue
        except Exception as exc:  # noqa: BLE001 - unreachable destination and the like
            problems.append(f"{copy.destination.name}: could not be read ({exc})")
            BackupCopy.objects.filter(pk=copy.pk).update(last_verified_at=now, error=str(exc))
            continue
        ok = size == backup.size and digest == backup.checksum_sha256
        if not ok:
            problems.append(
                f"{copy.destination.name}: size {size} / checksum {digest[:12]}… do not match "
                f"the recorded {backup.size} / {backup.checksum_sha256[:12]}…"
            )
        BackupCopy.objects.filter(pk=copy.pk).update(
            file_exists=True, last_verified_at=now, error="" if ok else "checksum mismatch"
        )
    message = "; ".join(problems) or "Every copy matches its recorded size and checksum."
    _update(backup, verified_at=now, verification_message=message)
    if problems:
        alert_raise(
            organisation=backup.organisation,
            kind=AlertKind.VERIFICATION_FAILED,
            title=f"Backup {backup.name} could not be verified",
            message=message,
            environment=backup.environment,
            backup=backup,
            severity="critical",
        )
        return False
    alert_resolve(
        organisation=backup.organisation, kind=AlertKind.VERIFICATION_FAILED, backup=backup
    )
    return True


def backups_reap_stale(*, now: datetime | None = None) -> list[Backup]:
    """Fail backups whose worker stopped sending heartbeats (it was killed or lost)."""
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS)
    reaped = []
    stale = Backup.objects.filter(
        status__in=[BackupStatus.IN_PROGRESS, BackupStatus.ABORTING], heartbeat_at__lt=limit
    ).select_related("environment__project__organisation")
    for backup in stale:
        final = (
            BackupStatus.ABORTED if backup.status == BackupStatus.ABORTING else BackupStatus.FAILED
        )
        message = (
            f"The worker running this backup stopped responding (last heartbeat "
            f"{backup.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC); it probably died. "
            "Partial artifacts were removed."
        )
        if not Backup.objects.filter(pk=backup.pk, status=backup.status).update(
            status=final, message=message, completed_at=now, updated_at=now
        ):
            continue
        for copy in backup.copies.select_related("destination").exclude(status=CopyStatus.STORED):
            try:
                discard_partial_artifacts(copy.destination, copy.key)
            except Exception:  # noqa: BLE001
                logger.exception("could not discard partial artifacts of %s", copy.key)
            _mark_copy(copy, CopyStatus.FAILED, error="the worker died during the upload")
        backup.refresh_from_db()
        if final == BackupStatus.FAILED:
            alert_raise(
                organisation=backup.organisation,
                kind=AlertKind.BACKUP_FAILED,
                title=f"Backup {backup.name} failed: its worker died",
                message=message,
                environment=backup.environment,
                backup=backup,
                severity="critical",
            )
        reaped.append(backup)
    return reaped
