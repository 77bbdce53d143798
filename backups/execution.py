"""Running one backup: the engine's dump streamed through the pipeline into every destination.

Two threads share the work. The *streaming thread* talks only to the database servers and
the destinations (engine, pipeline, sinks); the *task thread* owns every write to the app
database: it persists progress and a heartbeat twice a second and turns an ``aborting``
row into a cancel. So a dump that blocks (waiting on a table lock, a slow server) keeps
its heartbeat, can still be aborted, and is never mistaken for a dead worker.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from alerts.models import AlertKind
from alerts.services import alert_raise, alert_resolve
from backups.container import container_source
from backups.engines import ConnectionSpec, EngineError, EngineUnavailable, get_engine
from backups.keys import organisation_key
from backups.models import Backup, BackupCopy, BackupKind, BackupStatus, CopyStatus, Phase
from backups.pipeline import (
    PipelineCancelled,
    PipelineError,
    PipelineOptions,
    PipelineResult,
    run_pipeline,
)
from destinations.storage import artifact_size, delete_artifact, open_sink
from organizations.hostpolicy import host_rules, pinned_address
from organizations.models import Database, Environment

logger = logging.getLogger(__name__)

COMPRESSION_EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}
# How often the task thread writes progress and its heartbeat, and looks for an abort.
PROGRESS_INTERVAL = 0.5
ABORT_CHECK_INTERVAL = 1.0
RUNNING = (BackupStatus.IN_PROGRESS, BackupStatus.ABORTING)


def connection_spec_for(database: Database) -> ConnectionSpec:
    """The database's connection, its host checked against the organisation's host policy
    by the engine just before each connection (the policy is read here, on the calling
    thread: the streaming thread makes no queries)."""
    rules = host_rules(database.environment.project.organisation_id)
    return ConnectionSpec(
        engine=database.engine,
        host=database.host,
        port=database.port,
        user=database.username,
        password=database.password,
        name=database.database_name,
        options=dict(database.options or {}),
        address_check=functools.partial(pinned_address, rules),
    )


def files_spec_for(environment: Environment) -> ConnectionSpec:
    return ConnectionSpec(engine="files", name=environment.files_path)


# --- sources -------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class SourcePlan:
    """What to dump, read from the app database up front (the streaming thread makes no
    queries): ``(member name or "", engine name, spec, row-count prefix)`` per part."""

    kind: str
    parts: list[tuple[str, str, ConnectionSpec, str]]


def source_plan_for(backup: Backup) -> SourcePlan:
    if backup.kind == BackupKind.DATABASE:
        if backup.database is None:
            raise EngineError("The database of this backup no longer exists.")
        db = backup.database
        return SourcePlan(backup.kind, [("", db.engine, connection_spec_for(db), "")])
    if backup.kind == BackupKind.FILESYSTEM:
        return SourcePlan(backup.kind, [("", "files", files_spec_for(backup.environment), "")])
    parts = []
    for db in backup.environment.databases.order_by("slug"):
        extension = get_engine(db.engine).extension
        parts.append(
            (f"database/{db.slug}.{extension}", db.engine, connection_spec_for(db), f"{db.slug}/")
        )
    if backup.environment.files_path:
        parts.append(("files.tar", "files", files_spec_for(backup.environment), ""))
    return SourcePlan(backup.kind, parts)


@dataclass
class _Source:
    """The open source: one dump, one tar, or a container of several (``full``)."""

    extension: str = ""
    estimate: int = 0
    engine_version: str = ""
    dumps: list = field(default_factory=list)
    prefixes: list = field(default_factory=list)
    dump_ended_at: float | None = None
    stream: BinaryIO | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    killed: bool = False

    def open_dump(self, engine, spec, prefix: str = "") -> _FinishingReader:
        with self.lock:
            if self.killed:
                raise PipelineCancelled("backup cancelled")
            dump = engine.open_dump(spec)
            self.dumps.append(dump)
            self.prefixes.append(prefix)
        return _FinishingReader(dump, self._mark_ended)

    @property
    def row_counts(self) -> dict:
        """Rows per table (files, directories, links for a tar), read from each dump now:
        a database dump knows them when it starts, a tar only once it has streamed."""
        counts = {}
        for prefix, dump in zip(self.prefixes, self.dumps, strict=True):
            for table, count in (dump.row_counts or {}).items():
                counts[f"{prefix}{table}"] = count
        return counts

    def _mark_ended(self) -> None:
        self.dump_ended_at = time.monotonic()

    def kill(self) -> None:
        with self.lock:
            self.killed = True
            dumps = list(self.dumps)
        for dump in dumps:
            try:
                dump.kill()
            except Exception:
                logger.exception("could not kill a dump")


def open_source(plan: SourcePlan, source: _Source) -> None:
    """Start the dump(s) of a plan into ``source`` (runs on the streaming thread)."""
    versions = []
    engines = []
    for member, engine_name, spec, prefix in plan.parts:
        engine = get_engine(engine_name)
        engine.require_tools()
        engines.append((member, engine, spec, prefix))
        source.estimate += engine.estimate_size(spec) or 0
        if engine_name != "files":
            version = engine.server_version(spec)
            versions.append(f"{prefix.rstrip('/')}:{version}" if prefix else version)
    source.engine_version = ", ".join(versions)
    if plan.kind != BackupKind.FULL:
        _, engine, spec, _ = engines[0]
        source.extension = engine.extension
        source.stream = source.open_dump(engine, spec)
        return
    source.extension = "sbxc"
    source.stream = container_source(
        [
            (member, lambda e=engine, s=spec, p=prefix: source.open_dump(e, s, p))
            for member, engine, spec, prefix in engines
        ]
    )


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


def source_extension(plan: SourcePlan) -> str:
    if plan.kind == BackupKind.FULL:
        return "sbxc"
    return get_engine(plan.parts[0][1]).extension


def pipeline_options_for(backup: Backup) -> PipelineOptions:
    key = organisation_key(backup.organisation)
    return PipelineOptions(
        compression=settings.STRONGBOX_COMPRESSION,
        level=settings.STRONGBOX_COMPRESSION_LEVEL,
        encryption_key=key[1] if key else None,
        key_id=key[0] if key else "",
    )


# --- bookkeeping ---------------------------------------------------------------------------


class Phases:
    """Phase timings as seed 004's ``steps.details`` shows them (restores keep theirs the
    same way, with extra facts such as the base backup a recovery started from)."""

    def __init__(self):
        self.items: list[dict] = []

    def start(self, name: str) -> dict:
        item = {"name": name, "status": "RUNNING", "started_at": timezone.now().isoformat()}
        self.items.append(item)
        return item

    @staticmethod
    def finish(item: dict, status: str = "SUCCESS", ended: datetime | None = None, **extra) -> None:
        ended = ended or timezone.now()
        item["status"] = status
        item["finished_at"] = ended.isoformat()
        started = datetime.fromisoformat(item["started_at"])
        item["duration_sec"] = round(max(0.0, (ended - started).total_seconds()), 3)
        item.update(extra)

    def fail_running(self) -> None:
        for item in self.items:
            if item["status"] == "RUNNING":
                self.finish(item, "ERROR")


def update_backup(backup: Backup, **fields) -> None:
    """Write fields with a queryset update (no save(): other processes write the row too)."""
    for name, value in fields.items():
        setattr(backup, name, value)
    fields["updated_at"] = timezone.now()
    Backup.objects.filter(pk=backup.pk).update(**fields)


def _finish_backup(backup: Backup, **fields) -> bool:
    """Move a running backup to its end state, unless the reaper already gave up on it."""
    fields["updated_at"] = timezone.now()
    fields.setdefault("completed_at", timezone.now())
    done = Backup.objects.filter(pk=backup.pk, status__in=RUNNING).update(**fields)
    for name, value in fields.items():
        setattr(backup, name, value)
    if not done:
        logger.warning("backup %s was no longer running when it ended; left as is", backup.id)
    return bool(done)


def mark_copy(copy: BackupCopy, status: str, **fields) -> None:
    fields["status"] = status
    if status == CopyStatus.FAILED:
        fields["file_exists"] = False
    for name, value in fields.items():
        setattr(copy, name, value)
    BackupCopy.objects.filter(pk=copy.pk).update(**fields)


def _fail_open_copies(copies, error: str) -> None:
    for copy in copies:
        if copy.status == CopyStatus.UPLOADING:
            mark_copy(copy, CopyStatus.FAILED, error=error)


def _copies_message(copies) -> str:
    failed = [c for c in copies if c.status != CopyStatus.STORED]
    good = [c for c in copies if c.status == CopyStatus.STORED]
    message = (
        "Failed destinations: "
        + "; ".join(f"{c.destination.name}: {c.error or 'failed'}" for c in failed)
        + "."
    )
    if good:
        message += " Stored completely in: " + ", ".join(c.destination.name for c in good) + "."
    return message


def _named(error: BaseException, copies: dict) -> str:
    """The error with each sink (named by destination id) shown by its destination's name."""
    text = str(error)
    for name, copy in copies.items():
        text = text.replace(f"{name}: ", f"{copy.destination.name}: ")
    return text


def _fail(backup: Backup, message: str, phases: Phases, **fields) -> None:
    # The status and its alert commit together: whoever sees "failed" sees why.
    with transaction.atomic():
        if not _finish_backup(
            backup,
            status=BackupStatus.FAILED,
            message=message[-8000:],
            phases=phases.items,
            **fields,
        ):
            return
        alert_raise(
            organisation=backup.organisation,
            kind=AlertKind.BACKUP_FAILED,
            title=f"Backup {backup.name} failed",
            message=message[-2000:],
            environment=backup.environment,
            backup=backup,
            severity="critical",
        )


# --- the run -------------------------------------------------------------------------------


@dataclass
class _Run:
    """State shared between the task thread and the streaming thread."""

    plan: SourcePlan
    options: PipelineOptions
    sinks_for: Callable[[], list]
    cancel: threading.Event = field(default_factory=threading.Event)
    source: _Source = field(default_factory=_Source)
    bytes_in: int = 0
    result: PipelineResult | None = None
    error: BaseException | None = None

    def stream(self) -> None:
        sinks = []
        try:
            open_source(self.plan, self.source)
            if self.cancel.is_set():
                raise PipelineCancelled("backup cancelled")
            sinks = self.sinks_for()
            if not sinks:
                raise PipelineError("no destination could be opened")
            self.result = run_pipeline(
                self.source.stream,
                sinks,
                self.options,
                progress=self._progress,
                cancel=self.cancel,
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the task thread
            self.error = exc
            if not isinstance(exc, PipelineError):
                for sink in sinks:
                    sink.abort()
        finally:
            self.source.kill()

    def _progress(self, progress) -> None:
        self.bytes_in = progress.bytes_in


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
    phases = Phases()
    try:
        _execute(backup, phases)
    except Exception as exc:
        logger.exception("backup %s failed unexpectedly", backup.id)
        if isinstance(exc, DatabaseError):
            connection.close()  # a cut connection: record the failure on a new one
        phases.fail_running()
        _fail(backup, f"Unexpected error: {exc}", phases)
    backup.refresh_from_db()
    return backup


def _execute(backup: Backup, phases: Phases) -> None:
    dump_phase = phases.start(Phase.DUMP)
    try:
        plan = source_plan_for(backup)
        extension = source_extension(plan)
    except EngineError as exc:
        phases.finish(dump_phase, "ERROR")
        _fail(backup, f"The dump could not start: {exc}", phases)
        return
    options = pipeline_options_for(backup)
    key = artifact_key(backup, extension, options)
    copies = {}
    for destination in backup.destinations.all():
        copy, _ = BackupCopy.objects.update_or_create(
            backup=backup,
            destination=destination,
            defaults={"key": key, "status": CopyStatus.UPLOADING, "error": ""},
        )
        copies[str(destination.id)] = copy

    def open_sinks() -> list:
        sinks = []
        for name, copy in copies.items():
            try:
                sinks.append(open_sink(copy.destination, key, name=name))
            except Exception as exc:  # noqa: BLE001 - a destination we cannot even open
                copy.error = f"could not start the upload: {exc}"
        return sinks

    compress_phase = phases.start(Phase.COMPRESS)
    upload_phase = phases.start(Phase.UPLOAD)
    update_backup(
        backup,
        phase=Phase.DUMP,
        phases=phases.items,
        compression=options.compression,
        encrypted=bool(options.encryption_key),
        key_id=options.key_id,
    )
    run = _Run(plan=plan, options=options, sinks_for=open_sinks)
    _follow(backup, run)

    source = run.source
    if run.error is not None:
        phases.fail_running()
        info = {"engine_version": source.engine_version, "row_counts": source.row_counts}
        if isinstance(run.error, PipelineCancelled):
            _fail_open_copies(copies.values(), "aborted")
            _finish_backup(
                backup,
                status=BackupStatus.ABORTED,
                message="Aborted on request; partial artifacts were removed.",
                phases=phases.items,
                **info,
            )
        elif isinstance(run.error, EngineUnavailable):
            _fail_open_copies(copies.values(), "not supported")
            _finish_backup(
                backup,
                status=BackupStatus.NOT_SUPPORTED,
                message=str(run.error),
                phases=phases.items,
            )
        else:
            for copy in copies.values():
                if copy.status == CopyStatus.UPLOADING:
                    mark_copy(copy, CopyStatus.FAILED, error=copy.error or str(run.error))
            _fail(backup, f"The backup failed: {_named(run.error, copies)}", phases, **info)
        return

    result = run.result
    ended = timezone.now()
    dump_end = ended
    if source.dump_ended_at is not None:
        dump_end = ended - timedelta(seconds=max(0.0, time.monotonic() - source.dump_ended_at))
    phases.finish(dump_phase, ended=dump_end)
    phases.finish(compress_phase, ended=ended)
    phases.finish(upload_phase, "ERROR" if result.failed else "SUCCESS", ended=ended)

    verify_phase = phases.start(Phase.VERIFY)
    update_backup(
        backup,
        phase=Phase.VERIFY,
        phases=phases.items,
        bytes_done=result.bytes_in,
        bytes_total=source.estimate or None,
    )
    for name, error in result.failed.items():
        mark_copy(copies[name], CopyStatus.FAILED, error=error)
    for name in result.committed:
        _verify_fresh_copy(copies[name], result.bytes_out, result.sha256)
    for copy in copies.values():
        if copy.status == CopyStatus.UPLOADING:
            mark_copy(copy, CopyStatus.FAILED, error=copy.error or "the upload did not start")

    if Backup.objects.filter(pk=backup.pk, status=BackupStatus.ABORTING).exists():
        # The abort came after the last chunk: honour it rather than keep what was asked away.
        for copy in copies.values():
            if copy.status == CopyStatus.STORED:
                _discard_copy(copy)
            mark_copy(copy, CopyStatus.FAILED, error="aborted")
        phases.finish(verify_phase, "ERROR")
        _finish_backup(
            backup,
            status=BackupStatus.ABORTED,
            message="Aborted on request; the artifacts were removed.",
            phases=phases.items,
        )
        return
    failed = [c for c in copies.values() if c.status != CopyStatus.STORED]
    phases.finish(verify_phase, "ERROR" if failed else "SUCCESS")
    common = {
        "size": result.bytes_out,
        "checksum_sha256": result.sha256,
        "row_counts": source.row_counts,
        "engine_version": source.engine_version,
        "bytes_done": result.bytes_in,
    }
    if failed:
        _fail(backup, _copies_message(copies.values()), phases, **common)
        return
    if _finish_backup(
        backup, status=BackupStatus.COMPLETED, phase="", message="", phases=phases.items, **common
    ):
        if backup.database_id and source.engine_version:
            Database.objects.filter(pk=backup.database_id).update(version=source.engine_version)
        alert_resolve(organisation=backup.organisation, kind=AlertKind.BACKUP_FAILED, backup=backup)


def _follow(backup: Backup, run: _Run) -> None:
    """Run the streaming thread; meanwhile persist progress and heartbeat, honour aborts."""
    # The streaming thread logs with the task's context (the backup id on every line).
    thread = threading.Thread(
        target=contextvars.copy_context().run,
        args=(run.stream,),
        name=f"backup-{backup.id}",
        daemon=True,
    )
    thread.start()
    last_check = 0.0
    estimate_written = False
    try:
        while thread.is_alive():
            thread.join(PROGRESS_INTERVAL)
            fields = {"bytes_done": run.bytes_in, "heartbeat_at": timezone.now()}
            if not estimate_written and run.source.estimate:
                fields["bytes_total"] = run.source.estimate
                fields["engine_version"] = run.source.engine_version
            try:
                Backup.objects.filter(pk=backup.pk, status__in=RUNNING).update(**fields)
            except DatabaseError:
                # The app database connection was cut (a restart, a failover): drop it so
                # the next tick reconnects. If the heartbeat stays away past the reaper's
                # timeout, the backup is reaped and the status check below cancels the work.
                logger.warning("lost the app database connection; reconnecting", exc_info=True)
                connection.close()
                continue
            estimate_written = estimate_written or "bytes_total" in fields
            now = time.monotonic()
            if now - last_check >= ABORT_CHECK_INTERVAL:
                last_check = now
                status = (
                    Backup.objects.filter(pk=backup.pk).values_list("status", flat=True).first()
                )
                if status != BackupStatus.IN_PROGRESS and not run.cancel.is_set():
                    # Aborting on request, or reaped/changed meanwhile: stop the work.
                    run.cancel.set()
                    run.source.kill()
    finally:
        if thread.is_alive():
            # Leaving on an error: the upload must not complete behind a row nobody ends.
            run.cancel.set()
            run.source.kill()
            thread.join(timeout=60)


def _verify_fresh_copy(copy: BackupCopy, expected_size: int, checksum: str) -> None:
    try:
        stored = artifact_size(copy.destination, copy.key)
    except Exception as exc:  # noqa: BLE001 - any storage error makes this copy bad
        mark_copy(copy, CopyStatus.FAILED, error=f"could not check the stored copy: {exc}")
        return
    if stored != expected_size:
        _discard_copy(copy)
        mark_copy(
            copy,
            CopyStatus.FAILED,
            error=f"stored size {stored} does not match the {expected_size} bytes written",
        )
        return
    mark_copy(
        copy,
        CopyStatus.STORED,
        size=expected_size,
        checksum_sha256=checksum,
        file_exists=True,
        last_verified_at=timezone.now(),
    )


def _discard_copy(copy: BackupCopy) -> None:
    try:
        delete_artifact(copy.destination, copy.key)
    except Exception:
        logger.exception("could not remove the copy %s", copy.key)
