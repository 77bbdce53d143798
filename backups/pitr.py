"""Point-in-time recovery for PostgreSQL: WAL archive and fetch, base backups, coverage,
restore to a timestamp, retention and alerts.

In the spirit of pgBackRest and Barman, inside Strongbox:

- PostgreSQL's ``archive_command`` runs ``manage.py archive_wal`` (``wal_archive``): each
  WAL file is compressed, encrypted when the organisation has a key, checksummed and
  written through the same pipeline and sinks as backups into every destination of the
  environment's schedule (or the organisation's default), under
  ``{org}/{project}/{env}/wal/{database}/{file}.zst[.enc]``. It succeeds only when every
  destination holds it durably; archiving a file again with the same content succeeds
  without rewriting it, with other content it is refused (a second cluster writing into
  the same archive, or a restored copy that kept archiving).
- ``restore_command`` runs ``manage.py fetch_wal`` (``wal_fetch``): verified against the
  recorded checksum before PostgreSQL sees it; absent means non-zero (recovery ends there).
- Base backups (``Backup`` kind ``base``, method ``physical``) are pg_basebackup tar
  streams; each is the ``base_backup`` of the WAL that follows it.
- Coverage: per database, the windows in which a ``recovery_target_time`` is reachable (from
  the end of a base backup to the last transaction of the unbroken WAL run after it), the
  archiver status (last archived and failed file, lag, failures) and the gaps.

The database's name in the key is a deviation from ``{env}/wal/{file}``: two PostgreSQL
clusters of one environment produce the same WAL file names and must not collide.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Sum
from django.utils import timezone

from alerts.models import AlertKind
from alerts.services import alert_raise, alert_resolve
from backups.engines import EngineError, EngineUnavailable
from backups.engines import postgresql_physical as physical
from backups.keys import key_for_id, organisation_key
from backups.models import (
    Backup,
    BackupCopy,
    BackupKind,
    BackupMethod,
    BackupStatus,
    BackupTrigger,
    BaseBackupPosition,
    CopyStatus,
    Phase,
    WalArchiver,
    WalKind,
    WalSegment,
)
from backups.pipeline import (
    PipelineCancelled,
    PipelineError,
    PipelineOptions,
    open_artifact,
    run_pipeline,
)
from backups.services import (
    _destinations_for,
    artifact_key,
    backup_claim,
    backup_name,
    connection_spec_for,
    pipeline_options_for,
)
from config.errors import ApplicationError, Conflict, InvalidInput, Unprocessable
from destinations.models import Destination
from destinations.storage import (
    ArtifactMissing,
    artifact_size,
    delete_artifact,
    open_artifact_stream,
    open_sink,
)
from organizations.models import Database, Environment

logger = logging.getLogger(__name__)

WAL_EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}
# Archiving is "lagging" when nothing was archived for this long while the server has
# finished segments waiting; a quiet database (no new segment) is not lagging.
WAL_LAG_SECONDS = int(getattr(settings, "STRONGBOX_WAL_LAG_SECONDS", 15 * 60))
HEARTBEAT_INTERVAL = 0.5
ABORT_CHECK_INTERVAL = 1.0


class WalArchiveFailed(ApplicationError):
    status_code = 500
    code = "wal_archive_failed"


class WalConflict(Conflict):
    """A different file of the same name is already archived."""


class WalFetchFailed(ApplicationError):
    status_code = 500
    code = "wal_fetch_failed"


def _configured_pg_bin() -> str:
    return getattr(settings, "STRONGBOX_PG_BIN_DIR", "") or os.environ.get(
        "STRONGBOX_PG_BIN_DIR", ""
    )


# --- where WAL goes ---------------------------------------------------------------------------


def wal_destinations(*, database: Database) -> list[Destination]:
    """The schedule's destinations of the database's environment, else the default one."""
    environment = database.environment
    schedule = getattr(environment, "schedule", None)
    return _destinations_for(environment, None, schedule)


def wal_options(*, database: Database) -> PipelineOptions:
    key = organisation_key(database.environment.project.organisation)
    # One thread: a segment is 16 MiB, zstd's worker threads cost more than they save.
    return PipelineOptions(
        compression="zstd",
        level=settings.STRONGBOX_COMPRESSION_LEVEL,
        threads=0,
        encryption_key=key[1] if key else None,
        key_id=key[0] if key else "",
    )


def wal_key(*, database: Database, name: str, options: PipelineOptions) -> str:
    environment = database.environment
    project = environment.project
    extension = WAL_EXTENSIONS[options.compression] + (".enc" if options.encryption_key else "")
    return (
        f"{project.organisation.slug}/{project.slug}/{environment.slug}/wal/"
        f"{database.slug}/{name}{extension}"
    )


def _require_postgresql(database: Database) -> None:
    if database.engine != "postgresql":
        raise InvalidInput(
            f"{database} is a {database.engine} database; point-in-time recovery is for "
            "PostgreSQL only.",
            fields={"database": ["Not a PostgreSQL database."]},
        )


# --- archive ----------------------------------------------------------------------------------


@dataclass
class WalArchiveResult:
    segment: WalSegment
    already_archived: bool
    destinations: list[str] = field(default_factory=list)


def _file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _is_segment_size(size: int) -> bool:
    """wal_segment_size is a power of two from 1 MiB to 1 GiB."""
    return (1 << 20) <= size <= (1 << 30) and size & (size - 1) == 0


def _stored_plaintext_digest(destination: Destination, key: str) -> str:
    with open_artifact_stream(destination, key) as raw:
        plain = open_artifact(raw, key_for=key_for_id)
        digest = hashlib.sha256()
        while chunk := plain.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def wal_archive(*, database: Database, path: str | Path, name: str) -> WalArchiveResult:
    """Store one WAL file in every destination; raise unless it is durably everywhere.

    Failures are recorded on the database's WalArchiver row and raise (de-duplicated) a
    ``wal_archiving_failed`` alert before the exception reaches the caller.
    """
    try:
        return _archive(database, Path(path), name)
    except WalConflict as exc:
        _archive_failed(database, name, exc.message)
        raise
    except ApplicationError as exc:
        _archive_failed(database, name, exc.message)
        raise
    except Exception as exc:
        logger.exception("archiving %s of %s failed", name, database.pk)
        message = f"{type(exc).__name__}: {exc}"
        _archive_failed(database, name, message)
        raise WalArchiveFailed(message) from exc


def _archive(database: Database, path: Path, name: str) -> WalArchiveResult:
    _require_postgresql(database)
    try:
        wal = physical.parse_wal_name(name)
    except ValueError as exc:
        raise WalArchiveFailed(str(exc)) from exc
    checksum, size = _file_digest(path)
    if wal.kind in ("segment", "partial") and _is_segment_size(size):
        # Non-default wal_segment_size: the name's arithmetic follows the real size.
        wal = physical.parse_wal_name(name, segment_size=size)
    existing = WalSegment.objects.filter(database=database, name=name).first()
    if existing is not None:
        if existing.checksum_sha256 != checksum:
            raise WalConflict(
                f"{name} is already archived for {database} with different content "
                f"(sha256 {existing.checksum_sha256[:12]}…, this one {checksum[:12]}…); "
                "refusing to overwrite it. Is another cluster archiving into this database?"
            )
        _archive_succeeded(database, name)
        return WalArchiveResult(segment=existing, already_archived=True)

    options = wal_options(database=database)
    key = wal_key(database=database, name=name, options=options)
    destinations = wal_destinations(database=database)
    present, missing = _already_stored(destinations, key, checksum, name)
    artifact_sha256 = ""
    stored_size = 0
    if missing:
        artifact_sha256, stored_size = _store(path, missing, key, options, name)
    else:
        stored_size = artifact_size(destinations[0], key) or 0
    first_xact = last_xact = None
    if wal.kind == "segment":
        first_xact, last_xact = physical.xact_times(str(path), pg_bin=_waldump_dir())
    environment = database.environment
    try:
        with transaction.atomic():
            segment = WalSegment.objects.create(
                organisation_id=environment.project.organisation_id,
                environment=environment,
                database=database,
                base_backup=_base_for(database, wal),
                name=name,
                kind=wal.kind,
                timeline=wal.timeline,
                segment_number=wal.number,
                size=size,
                stored_size=stored_size,
                checksum_sha256=checksum,
                artifact_sha256=artifact_sha256,
                key=key,
                compression=options.compression,
                encrypted=bool(options.encryption_key),
                key_id=options.key_id,
                first_xact_at=first_xact,
                last_xact_at=last_xact,
            )
            segment.destinations.set(destinations)
    except IntegrityError:
        # Archived concurrently by another run (PostgreSQL retried while we were slow).
        segment = WalSegment.objects.get(database=database, name=name)
        if segment.checksum_sha256 != checksum:
            raise WalConflict(f"{name} was archived concurrently with different content") from None
    if wal.kind == "backup":
        _record_backup_stop(database, path)
    if wal.kind == "segment":
        _check_gap_on_arrival(database, segment)
    _archive_succeeded(database, name)
    return WalArchiveResult(
        segment=segment,
        already_archived=False,
        destinations=[d.name for d in destinations if d in missing or d in present],
    )


def _already_stored(destinations, key, checksum, name):
    """Split destinations into those already holding this very file (a previous attempt
    that failed elsewhere) and those still to write; another file there is a conflict."""
    present, missing = [], []
    for destination in destinations:
        if artifact_size(destination, key) is None:
            missing.append(destination)
            continue
        if _stored_plaintext_digest(destination, key) != checksum:
            raise WalConflict(
                f"{name} already exists in {destination.name} with different content; "
                "refusing to overwrite it."
            )
        present.append(destination)
    return present, missing


def _store(path: Path, destinations, key, options, name) -> tuple[str, int]:
    sinks = []
    errors = []
    for destination in destinations:
        try:
            sinks.append(open_sink(destination, key, name=str(destination.id)))
        except Exception as exc:  # noqa: BLE001 - reported with the others
            errors.append(f"{destination.name}: {exc}")
    if errors:
        for sink in sinks:
            sink.abort()
        raise WalArchiveFailed(f"{name} could not be stored: " + "; ".join(errors))
    by_id = {str(d.id): d for d in destinations}
    with open(path, "rb") as source:
        try:
            result = run_pipeline(source, sinks, options)
        except PipelineError as exc:
            raise WalArchiveFailed(f"{name} could not be stored: {exc}") from exc
    problems = [f"{by_id[n].name}: {error}" for n, error in result.failed.items()]
    for sink_name in result.committed:
        destination = by_id[sink_name]
        stored = artifact_size(destination, key)
        if stored != result.bytes_out:
            problems.append(f"{destination.name}: stored {stored} bytes of {result.bytes_out}")
    if problems:
        raise WalArchiveFailed(f"{name} is not stored everywhere: " + "; ".join(problems))
    return result.sha256, result.bytes_out


def _waldump_dir() -> str:
    try:
        return physical.pg_bin_dir(configured=_configured_pg_bin())
    except EngineUnavailable:
        return ""


def _base_for(database: Database, wal: physical.WalName) -> Backup | None:
    """The latest completed base backup this WAL file replays onto."""
    if wal.number is None:
        return None
    position = (
        BaseBackupPosition.objects.filter(
            backup__database=database,
            backup__status=BackupStatus.COMPLETED,
            timeline__lte=wal.timeline,
            start_segment_number__lte=wal.number,
        )
        .select_related("backup")
        .order_by("-start_segment_number", "-backup__created_at")
        .first()
    )
    return position.backup if position else None


def _record_backup_stop(database: Database, path: Path) -> None:
    """A ``*.backup`` history file names its base backup (our label) and where it stopped."""
    fields = physical.parse_backup_label(path.read_text(encoding="utf-8", errors="replace"))
    label = fields.get("LABEL", "")
    try:
        stop_lsn, stop_wal = physical.label_location(fields.get("STOP WAL LOCATION", ""))
    except ValueError:
        return
    stop_time = physical.label_time(fields.get("STOP TIME", ""))
    BaseBackupPosition.objects.filter(backup__database=database, backup__name=label).update(
        stop_lsn=stop_lsn, stop_wal=stop_wal, stop_time=stop_time
    )


def _archiver(database: Database) -> None:
    WalArchiver.objects.get_or_create(database=database)


def _archive_succeeded(database: Database, name: str) -> None:
    now = timezone.now()
    updated = WalArchiver.objects.filter(database=database).update(
        last_archived_wal=name,
        last_archived_at=now,
        consecutive_failures=0,
        archived_count=F("archived_count") + 1,
    )
    if not updated:
        with contextlib.suppress(IntegrityError), transaction.atomic():
            WalArchiver.objects.create(
                database=database, last_archived_wal=name, last_archived_at=now, archived_count=1
            )
    organisation = database.environment.project.organisation
    alert_resolve(organisation=organisation, dedup_key=_failure_key(database))


def _archive_failed(database: Database, name: str, message: str) -> None:
    try:
        now = timezone.now()
        _archiver(database)
        WalArchiver.objects.filter(database=database).update(
            last_failed_wal=name[:64],
            last_failed_at=now,
            last_error=message[-4000:],
            failed_count=F("failed_count") + 1,
            consecutive_failures=F("consecutive_failures") + 1,
        )
        alert_raise(
            organisation=database.environment.project.organisation,
            kind=AlertKind.WAL_ARCHIVING_FAILED,
            title=f"WAL archiving of {database.name} is failing",
            message=f"{name}: {message}"[-2000:],
            environment=database.environment,
            severity="critical",
            dedup_key=_failure_key(database),
        )
    except Exception:  # the archive command must still exit non-zero with its message
        logger.exception("could not record the WAL archiving failure of %s", database.pk)


def _failure_key(database: Database) -> str:
    return f"{AlertKind.WAL_ARCHIVING_FAILED}:database:{database.pk}"


def _gap_key(database: Database) -> str:
    return f"{AlertKind.WAL_ARCHIVING_FAILED}:gap:database:{database.pk}"


def _check_gap_on_arrival(database: Database, segment: WalSegment) -> None:
    """A segment whose predecessor on its timeline is missing, while older ones exist,
    opens a gap: raise the alert now rather than at the next coverage read."""
    if segment.segment_number is None:
        return
    same_timeline = WalSegment.objects.filter(
        database=database, timeline=segment.timeline, kind=WalKind.SEGMENT
    )
    older = same_timeline.filter(segment_number__lt=segment.segment_number)
    if not older.exists():
        return
    if same_timeline.filter(segment_number=segment.segment_number - 1).exists():
        return
    previous = older.order_by("-segment_number").first()
    alert_raise(
        organisation=database.environment.project.organisation,
        kind=AlertKind.WAL_ARCHIVING_FAILED,
        title=f"Gap in the WAL archive of {database.name}",
        message=(
            f"{segment.name} was archived but the segments after {previous.name} before it "
            "are missing: point-in-time recovery cannot cross this gap."
        ),
        environment=database.environment,
        severity="critical",
        dedup_key=_gap_key(database),
    )


# --- fetch ------------------------------------------------------------------------------------


def wal_fetch(*, database: Database, name: str, target: str | Path) -> bool:
    """Write the WAL file ``name`` to ``target`` (verified). False when it was never archived.

    Raises WalFetchFailed when it was archived but no destination returns it intact.
    """
    try:
        physical.parse_wal_name(name)
    except ValueError as exc:
        raise WalFetchFailed(str(exc)) from exc
    segment = WalSegment.objects.filter(database=database, name=name).first()
    if segment is None:
        return False
    target = Path(target)
    problems = []
    for destination in segment.destinations.order_by("name"):
        try:
            _fetch_from(destination, segment, target)
            return True
        except ArtifactMissing:
            problems.append(f"{destination.name}: missing")
        except Exception as exc:  # noqa: BLE001 - try the next copy
            problems.append(f"{destination.name}: {exc}")
    raise WalFetchFailed(f"{name} could not be read intact: " + "; ".join(problems))


def _fetch_from(destination: Destination, segment: WalSegment, target: Path) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out, open_artifact_stream(destination, segment.key) as raw:
            plain = open_artifact(raw, key_for=key_for_id)
            while chunk := plain.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if digest.hexdigest() != segment.checksum_sha256 or size != segment.size:
            raise WalFetchFailed(
                f"checksum or size mismatch ({size} bytes, sha256 {digest.hexdigest()[:12]}…)"
            )
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --- base backups ------------------------------------------------------------------------------


def base_backup_request(
    *,
    database: Database,
    trigger: str = BackupTrigger.SCHEDULED,
    schedule=None,
    user=None,
    description: str = "",
    enqueue: bool = True,
) -> Backup:
    """Create a ``scheduled`` physical base backup of a PostgreSQL database and enqueue it.

    The scheduler calls this when the schedule has ``wal_enabled``. A second active backup
    of the same database is a Conflict, as for logical backups.
    """
    _require_postgresql(database)
    environment = database.environment
    if schedule is None:
        schedule = getattr(environment, "schedule", None)
    destinations = wal_destinations(database=database)
    created_at = timezone.now()
    name = backup_name(environment, created_at, f"{database.slug}-base")
    try:
        with transaction.atomic():
            backup = Backup.objects.create(
                organisation=environment.project.organisation,
                environment=environment,
                database=database,
                name=name,
                description=(description or "PostgreSQL base backup for point-in-time recovery")[
                    :500
                ],
                kind=BackupKind.BASE,
                method=BackupMethod.PHYSICAL,
                engine="postgresql",
                engine_version=database.version,
                trigger=trigger,
                schedule=schedule,
                requested_by=user if getattr(user, "pk", None) else None,
                created_at=created_at,
            )
            backup.destinations.set(destinations)
    except IntegrityError as exc:
        raise Conflict(f"A backup of {database} is already running.") from exc
    if enqueue:
        transaction.on_commit(lambda: _enqueue_base_backup(backup))
    return backup


def _enqueue_base_backup(backup: Backup) -> None:
    from django_q.tasks import async_task

    task_id = async_task(
        "backups.pitr.run_base_backup",
        str(backup.id),
        task_name=f"base backup {backup.name}",
        group="backups",
    )
    Backup.objects.filter(pk=backup.pk).update(task_id=task_id or "")


def run_base_backup(backup_id: str) -> str:
    """django-q2 entry point (``backups.tasks.run_backup`` does logical backups only)."""
    backup = backup_claim(backup_id=backup_id)
    if backup is None:
        return "skipped"
    return base_backup_execute(backup=backup).status


def _update(backup: Backup, **fields) -> None:
    for name, value in fields.items():
        setattr(backup, name, value)
    fields["updated_at"] = timezone.now()
    Backup.objects.filter(pk=backup.pk).update(**fields)


def _phase(name: str, started: datetime, status: str = "SUCCESS") -> dict:
    ended = timezone.now()
    return {
        "name": name,
        "status": status,
        "started_at": started.isoformat(),
        "finished_at": ended.isoformat(),
        "duration_sec": round((ended - started).total_seconds(), 3),
    }


class _Heartbeat:
    """Progress and heartbeat on the row; an ``aborting`` row cancels the pipeline."""

    def __init__(self, backup: Backup):
        self.backup = backup
        self.cancel = threading.Event()
        self._last_write = 0.0
        self._last_check = 0.0

    def __call__(self, progress) -> None:
        now = time.monotonic()
        if now - self._last_write >= HEARTBEAT_INTERVAL:
            self._last_write = now
            Backup.objects.filter(pk=self.backup.pk).update(
                bytes_done=progress.bytes_in, heartbeat_at=timezone.now()
            )
        if now - self._last_check >= ABORT_CHECK_INTERVAL:
            self._last_check = now
            status = Backup.objects.filter(pk=self.backup.pk).values_list("status", flat=True)
            if status.first() == BackupStatus.ABORTING:
                self.cancel.set()


def base_backup_execute(*, backup: Backup) -> Backup:
    """Run a claimed base backup to its end state; never leaves it in progress."""
    started = timezone.now()
    phases: list[dict] = []
    try:
        _execute_base(backup, phases, started)
    except Exception as exc:
        logger.exception("base backup %s failed unexpectedly", backup.id)
        _base_failed(backup, f"Unexpected error: {exc}", phases)
    backup.refresh_from_db()
    return backup


def _execute_base(backup: Backup, phases: list[dict], started: datetime) -> None:
    database = backup.database
    if database is None:
        _base_failed(backup, "The database of this backup no longer exists.", phases)
        return
    spec = connection_spec_for(database)
    try:
        version = _server_version(spec)
        major = (version or database.version or "").split(".")[0] or None
        pg_bin = physical.pg_bin_dir(major, configured=_configured_pg_bin())
        stream = physical.BaseBackupStream.open(spec, label=backup.name, pg_bin=pg_bin)
    except EngineUnavailable as exc:
        _update(
            backup,
            status=BackupStatus.NOT_SUPPORTED,
            message=str(exc),
            completed_at=timezone.now(),
        )
        return
    except EngineError as exc:
        _base_failed(backup, f"pg_basebackup could not start: {exc}", phases)
        return
    options = pipeline_options_for(backup)
    key = artifact_key(backup, "tar", options)
    copies: dict[str, BackupCopy] = {}
    sinks = []
    for destination in backup.destinations.all():
        copy, _ = BackupCopy.objects.update_or_create(
            backup=backup,
            destination=destination,
            defaults={"key": key, "status": CopyStatus.UPLOADING, "error": ""},
        )
        copies[str(destination.id)] = copy
        try:
            sinks.append(open_sink(destination, key, name=str(destination.id)))
        except Exception as exc:  # noqa: BLE001 - this copy fails, the others go on
            _copy(copy, CopyStatus.FAILED, error=f"could not start the upload: {exc}")
    _update(
        backup,
        phase=Phase.DUMP,
        engine_version=version,
        compression=options.compression,
        encrypted=bool(options.encryption_key),
        key_id=options.key_id,
    )
    if not sinks:
        stream.kill()
        _base_failed(backup, _copies_message(copies), phases)
        return
    heartbeat = _Heartbeat(backup)
    try:
        result = run_pipeline(stream, sinks, options, progress=heartbeat, cancel=heartbeat.cancel)
    except PipelineCancelled:
        stream.kill()
        _set_uploading(copies, "aborted")
        _update(
            backup,
            status=BackupStatus.ABORTED,
            message="Aborted on request; partial artifacts were removed.",
            completed_at=timezone.now(),
            phases=[_phase(Phase.DUMP, started, "ERROR")],
        )
        return
    except PipelineError as exc:
        stream.kill()
        _set_uploading(copies, str(exc))
        _base_failed(
            backup, f"The base backup failed: {exc}", [_phase(Phase.DUMP, started, "ERROR")]
        )
        return
    finally:
        stream.kill()
    phases.append(_phase(Phase.DUMP, started))
    verify_started = timezone.now()
    for sink_name, error in result.failed.items():
        _copy(copies[sink_name], CopyStatus.FAILED, error=error)
    for sink_name in result.committed:
        copy = copies[sink_name]
        stored = artifact_size(copy.destination, key)
        if stored == result.bytes_out:
            _copy(
                copy,
                CopyStatus.STORED,
                size=stored,
                checksum_sha256=result.sha256,
                file_exists=True,
                last_verified_at=timezone.now(),
            )
        else:
            _copy(copy, CopyStatus.FAILED, error=f"stored {stored} of {result.bytes_out} bytes")
    label = stream.label()
    failed = [c for c in copies.values() if c.status != CopyStatus.STORED]
    phases.append(_phase(Phase.VERIFY, verify_started, "ERROR" if failed else "SUCCESS"))
    common = {
        "size": result.bytes_out,
        "checksum_sha256": result.sha256,
        "bytes_done": result.bytes_in,
        "completed_at": timezone.now(),
    }
    if failed:
        _base_failed(backup, _copies_message(copies), phases, **common)
        return
    start_number = physical.segment_number_of_lsn(label.start_lsn)
    with transaction.atomic():
        BaseBackupPosition.objects.update_or_create(
            backup=backup,
            defaults={
                "timeline": label.timeline,
                "start_lsn": label.start_lsn,
                "start_wal": label.start_wal,
                "start_segment_number": start_number,
                "start_time": label.start_time,
            },
        )
        # WAL archived while this backup ran (or its .backup file came first) now has
        # this base as its parent.
        WalSegment.objects.filter(
            database=database, timeline__gte=label.timeline, segment_number__gte=start_number
        ).update(base_backup=backup)
        _update(
            backup,
            status=BackupStatus.COMPLETED,
            phase="",
            message="",
            phases=phases,
            parent=None,
            **common,
        )
    _stop_from_archived_history(database, backup)
    if version:
        Database.objects.filter(pk=database.pk).update(version=version)
    alert_resolve(organisation=backup.organisation, kind=AlertKind.BACKUP_FAILED, backup=backup)


def _server_version(spec) -> str:
    from backups.engines.postgresql import PostgreSQLEngine

    try:
        return PostgreSQLEngine().server_version(spec)
    except EngineError:
        return ""


def _stop_from_archived_history(database: Database, backup: Backup) -> None:
    """The ``.backup`` history file may have been archived before the backup row knew its
    position; read it back from the archive then."""
    position = BaseBackupPosition.objects.filter(backup=backup).first()
    if position is None or position.stop_time:
        return
    history = (
        WalSegment.objects.filter(
            database=database, kind=WalKind.BACKUP, name__startswith=position.start_wal
        )
        .order_by("-stored_at")
        .first()
    )
    if history is None:
        return
    with tempfile.TemporaryDirectory(dir=_tmp_dir()) as scratch:
        target = Path(scratch) / history.name
        with contextlib.suppress(Exception):
            if wal_fetch(database=database, name=history.name, target=target):
                _record_backup_stop(database, target)


def _tmp_dir() -> str | None:
    path = Path(settings.STRONGBOX_TMP_DIR)
    with contextlib.suppress(OSError):
        path.mkdir(parents=True, exist_ok=True)
        return str(path)
    return None


def _copy(copy: BackupCopy, status: str, **fields) -> None:
    fields["status"] = status
    if status == CopyStatus.FAILED:
        fields["file_exists"] = False
    for name, value in fields.items():
        setattr(copy, name, value)
    BackupCopy.objects.filter(pk=copy.pk).update(**fields)


def _set_uploading(copies: dict, error: str) -> None:
    for copy in copies.values():
        if copy.status == CopyStatus.UPLOADING:
            _copy(copy, CopyStatus.FAILED, error=error)


def _copies_message(copies: dict) -> str:
    failed = [c for c in copies.values() if c.status != CopyStatus.STORED]
    parts = [f"{c.destination.name}: {c.error or 'failed'}" for c in failed]
    return "Failed destinations: " + "; ".join(parts) + "."


def _base_failed(backup: Backup, message: str, phases: list[dict], **fields) -> None:
    fields.setdefault("completed_at", timezone.now())
    _update(backup, status=BackupStatus.FAILED, message=message[-8000:], phases=phases, **fields)
    alert_raise(
        organisation=backup.organisation,
        kind=AlertKind.BACKUP_FAILED,
        title=f"Base backup {backup.name} failed",
        message=message[-2000:],
        environment=backup.environment,
        backup=backup,
        severity="critical",
    )


# --- coverage ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Times a recovery_target_time can reach from one base backup."""

    base: Backup
    earliest: datetime
    latest: datetime


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _base_backups(database: Database) -> list[Backup]:
    return list(
        Backup.objects.filter(
            database=database,
            kind=BackupKind.BASE,
            status=BackupStatus.COMPLETED,
            base_position__isnull=False,
        )
        .select_related("base_position")
        .order_by("base_position__start_segment_number", "created_at")
    )


def _segment_map(database: Database) -> dict[int, tuple[int, datetime | None]]:
    """Segment number -> (timeline, last transaction time), the highest timeline winning
    as recovery_target_timeline = 'latest' does."""
    chosen: dict[int, tuple[int, datetime | None]] = {}
    rows = WalSegment.objects.filter(database=database, kind=WalKind.SEGMENT).values_list(
        "segment_number", "timeline", "last_xact_at"
    )
    for number, tli, last_xact in rows:
        if number not in chosen or chosen[number][0] < tli:
            chosen[number] = (tli, last_xact)
    return chosen


def _base_earliest(base: Backup) -> datetime:
    position = base.base_position
    if position.stop_time:
        # STOP TIME has whole seconds; a commit in that second may precede consistency.
        return position.stop_time + timedelta(seconds=1)
    return base.completed_at or base.created_at


def database_windows(database: Database) -> list[Window]:
    """One window per base backup whose WAL is unbroken from its start to a transaction."""
    segments = _segment_map(database)
    windows = []
    for base in _base_backups(database):
        position = base.base_position
        number = position.start_segment_number
        latest = None
        while number in segments and segments[number][0] >= position.timeline:
            last_xact = segments[number][1]
            if last_xact and (latest is None or last_xact > latest):
                latest = last_xact
            number += 1
        if number == position.start_segment_number:
            continue  # not even its first segment is archived
        if position.stop_wal:
            stop_number = physical.parse_wal_name(position.stop_wal).number or 0
            if number <= stop_number:
                continue  # the WAL that makes it consistent is missing
        earliest = _base_earliest(base)
        if latest is not None and latest >= earliest:
            windows.append(Window(base=base, earliest=earliest, latest=latest))
    return windows


def _gaps(database: Database) -> list[dict]:
    gaps = []
    rows = (
        WalSegment.objects.filter(database=database, kind=WalKind.SEGMENT)
        .order_by("timeline", "segment_number")
        .values_list("timeline", "segment_number", "name")
    )
    previous = None
    for tli, number, name in rows:
        if previous and previous[0] == tli and number > previous[1] + 1:
            gaps.append(
                {
                    "timeline": tli,
                    "afterWal": previous[2],
                    "beforeWal": name,
                    "firstMissingWal": physical.segment_name(tli, previous[1] + 1),
                    "missingSegments": number - previous[1] - 1,
                }
            )
        previous = (tli, number, name)
    return gaps


def _archiving(database: Database, now: datetime) -> dict:
    archiver = WalArchiver.objects.filter(database=database).first()
    if archiver is None:
        return {
            "status": "not-started",
            "lastArchivedWal": None,
            "lastArchivedAt": None,
            "lastFailedWal": None,
            "lastFailedAt": None,
            "lastError": None,
            "failedCount": 0,
            "consecutiveFailures": 0,
            "archivedCount": 0,
            "lagSeconds": None,
        }
    lag = (now - archiver.last_archived_at).total_seconds() if archiver.last_archived_at else None
    if archiver.consecutive_failures:
        status = "failing"
    elif lag is not None and lag > WAL_LAG_SECONDS:
        status = "idle-or-lagging"
    else:
        status = "ok"
    return {
        "status": status,
        "lastArchivedWal": archiver.last_archived_wal or None,
        "lastArchivedAt": _iso(archiver.last_archived_at),
        "lastFailedWal": archiver.last_failed_wal or None,
        "lastFailedAt": _iso(archiver.last_failed_at),
        "lastError": archiver.last_error or None,
        "failedCount": archiver.failed_count,
        "consecutiveFailures": archiver.consecutive_failures,
        "archivedCount": archiver.archived_count,
        "lagSeconds": round(lag, 1) if lag is not None else None,
    }


def _base_summary(base: Backup, windows: list[Window]) -> dict:
    position = base.base_position
    window = next((w for w in windows if w.base.pk == base.pk), None)
    return {
        "id": str(base.id),
        "name": base.name,
        "timeline": position.timeline,
        "startWal": position.start_wal,
        "startLsn": position.start_lsn,
        "stopLsn": position.stop_lsn or None,
        "startTime": _iso(position.start_time),
        "stopTime": _iso(position.stop_time),
        "completedAt": _iso(base.completed_at),
        "size": base.size,
        "recoverableFrom": _iso(window.earliest) if window else None,
        "recoverableTo": _iso(window.latest) if window else None,
    }


def database_coverage(*, database: Database, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    windows = database_windows(database)
    totals = WalSegment.objects.filter(database=database).aggregate(
        stored=Sum("stored_size"), latest=Max("last_xact_at")
    )
    return {
        "databaseId": str(database.id),
        "databaseName": database.name,
        "earliestRecoverableTime": _iso(min((w.earliest for w in windows), default=None)),
        "latestRecoverableTime": _iso(max((w.latest for w in windows), default=None)),
        "windows": [
            {"from": _iso(w.earliest), "to": _iso(w.latest), "baseBackupId": str(w.base.id)}
            for w in windows
        ],
        "baseBackups": [_base_summary(b, windows) for b in _base_backups(database)],
        "archiving": _archiving(database, now),
        "gaps": _gaps(database),
        "walFiles": WalSegment.objects.filter(database=database).count(),
        "walStoredBytes": totals["stored"] or 0,
        "lastTransactionAt": _iso(totals["latest"]),
    }


def _pitr_databases(environment: Environment):
    return environment.databases.filter(engine="postgresql").order_by("name")


def pitr_window(*, environment: Environment) -> tuple[datetime, datetime] | None:
    """(earliest, latest) time every PostgreSQL database of the environment can be
    recovered to, or None. For the restore flow: a ``pitrTimestamp`` outside is a 422."""
    bounds = []
    for database in _pitr_databases(environment):
        windows = database_windows(database)
        if not windows:
            return None
        bounds.append((min(w.earliest for w in windows), max(w.latest for w in windows)))
    if not bounds:
        return None
    earliest = max(b[0] for b in bounds)
    latest = min(b[1] for b in bounds)
    return (earliest, latest) if earliest <= latest else None


def pitr_coverage(*, environment: Environment, now: datetime | None = None) -> dict:
    """Seed 003's ``GET /api/environments/{env_id}/pitr`` body (camelCase)."""
    now = now or timezone.now()
    schedule = getattr(environment, "schedule", None)
    databases = [database_coverage(database=d, now=now) for d in _pitr_databases(environment)]
    window = pitr_window(environment=environment)
    failing = any(d["archiving"]["status"] == "failing" for d in databases)
    gaps = any(d["gaps"] for d in databases)
    if not databases:
        status = "no-postgresql-database"
    elif failing:
        status = "failing"
    elif gaps:
        status = "gaps"
    elif window is None:
        status = "no-window"
    else:
        status = "ok"
    return {
        "environmentId": str(environment.id),
        "walEnabled": bool(schedule and schedule.wal_enabled),
        "walRetentionDays": schedule.wal_retention_days if schedule else None,
        "status": status,
        "earliestRecoverableTime": _iso(window[0]) if window else None,
        "latestRecoverableTime": _iso(window[1]) if window else None,
        "baseBackups": [b for d in databases for b in d["baseBackups"]],
        "databases": databases,
        "generatedAt": _iso(now),
    }


def _window_text(windows: list[Window]) -> str:
    if not windows:
        return "there is no point-in-time recovery window yet"
    return "recoverable windows: " + ", ".join(
        f"{_iso(w.earliest)} to {_iso(w.latest)}" for w in windows
    )


def pitr_check_target(*, database: Database, target: datetime) -> Window:
    """The window (so the base backup) to recover ``target`` from; Unprocessable outside."""
    if timezone.is_naive(target):
        raise InvalidInput(
            "The recovery target needs a time zone.", fields={"pitrTimestamp": ["No time zone."]}
        )
    windows = database_windows(database)
    inside = [w for w in windows if w.earliest <= target <= w.latest]
    if not inside:
        raise Unprocessable(
            f"{_iso(target)} is outside the point-in-time recovery coverage of {database.name}: "
            f"{_window_text(windows)}.",
            fields={"pitrTimestamp": ["Outside the recoverable window."]},
        )
    # The latest base that still ends before the target: the least WAL to replay.
    return max(inside, key=lambda w: w.earliest)


# --- restore ----------------------------------------------------------------------------------


def fetch_wal_argv(database: Database) -> list[str]:
    """The restore_command PostgreSQL runs (through a shell) to get one WAL file."""
    manage = Path(settings.BASE_DIR) / "manage.py"
    return [sys.executable, str(manage), "fetch_wal", "--database", str(database.id), "%f", "%p"]


@dataclass
class PitrRestoreResult:
    database: Database
    base_backup: Backup
    target: datetime
    datadir: Path
    port: int
    stopped_at: str
    seconds: float
    log_path: Path

    def as_dict(self) -> dict:
        return {
            "databaseId": str(self.database.id),
            "baseBackupId": str(self.base_backup.id),
            "target": _iso(self.target),
            "dataDirectory": str(self.datadir),
            "port": self.port,
            "stoppedAt": self.stopped_at,
            "seconds": round(self.seconds, 1),
            "log": str(self.log_path),
        }


def pitr_restore(
    *,
    database: Database,
    target: datetime,
    datadir: str | Path,
    port: int,
    socket_dir: str | Path | None = None,
    launcher: tuple[str, ...] | list[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> PitrRestoreResult:
    """Recover ``database``'s cluster as of ``target`` into a NEW data directory and start
    it on ``port``; returns once recovery reached the target and the server promoted.

    The server is left running (stop it with ``pg_ctl stop -D datadir``). ``launcher`` is
    an argv prefix for pg_ctl (the server refuses to run as root); ``env`` is added to the
    server's environment, which its restore_command (``fetch_wal``) inherits.
    """
    _require_postgresql(database)
    window = pitr_check_target(database=database, target=target)
    base = window.base
    datadir = Path(datadir)
    started = time.monotonic()
    copy = base.copies.select_related("destination").filter(status=CopyStatus.STORED).first()
    if copy is None:
        raise Unprocessable(f"Base backup {base.name} has no stored copy left.")
    with open_artifact_stream(copy.destination, copy.key) as raw:
        physical.extract_base_backup(_plaintext(raw), datadir)
    major = (datadir / "PG_VERSION").read_text().strip()
    pg_bin = physical.pg_bin_dir(major, configured=_configured_pg_bin())
    socket_dir = str(socket_dir or datadir.parent)
    settings_text = physical.recovery_settings(
        restore_command=physical.restore_command(fetch_wal_argv(database)),
        target_time=target,
        port=port,
        socket_dir=socket_dir,
    )
    physical.write_recovery_config(datadir, settings_text)
    log_path = datadir.parent / f"{datadir.name}.recovery.log"
    physical.run_pg_ctl(
        physical.pg_ctl_argv("start", datadir, pg_bin=pg_bin, log_path=log_path),
        launcher=launcher,
        env=env,
    )
    outcome = physical.wait_for_recovery(log_path, datadir=datadir, timeout=timeout)
    return PitrRestoreResult(
        database=database,
        base_backup=base,
        target=target,
        datadir=datadir,
        port=port,
        stopped_at=outcome.stopped_at,
        seconds=time.monotonic() - started,
        log_path=log_path,
    )


def _plaintext(raw: BinaryIO) -> BinaryIO:
    return open_artifact(raw, key_for=key_for_id)


# --- retention and monitoring -------------------------------------------------------------------


def _retention_cutoff(environment: Environment, now: datetime) -> datetime | None:
    schedule = getattr(environment, "schedule", None)
    if schedule is None or not schedule.wal_retention_days:
        return None
    return now - timedelta(days=schedule.wal_retention_days)


def _protected_bases(database: Database, cutoff: datetime | None) -> list[Backup]:
    """Base backups still needed: the newest always; an older one while some time it alone
    can reach (until the next base becomes usable) is inside retention."""
    bases = _base_backups(database)
    if cutoff is None or not bases:
        return bases
    windows = {w.base.pk: w for w in database_windows(database)}
    kept = [bases[-1]]
    for base, successor in zip(bases, bases[1:], strict=False):
        next_window = windows.get(successor.pk)
        own = windows.get(base.pk)
        reach_end = next_window.earliest if next_window else (own.latest if own else None)
        if reach_end is None or reach_end >= cutoff:
            kept.append(base)
    return kept


def pitr_protected_backup_ids(*, environment: Environment, now: datetime | None = None) -> set:
    """Ids of base backups that GFS retention must not delete (their WAL window is still
    inside ``walRetentionDays``)."""
    now = now or timezone.now()
    cutoff = _retention_cutoff(environment, now)
    return {
        base.pk
        for database in _pitr_databases(environment)
        for base in _protected_bases(database, cutoff)
    }


def wal_retention_apply(*, environment: Environment, now: datetime | None = None) -> dict:
    """Remove WAL older than ``walRetentionDays`` that no kept base backup needs."""
    now = now or timezone.now()
    cutoff = _retention_cutoff(environment, now)
    removed = bytes_removed = 0
    errors = []
    if cutoff is None:
        return {"removed": 0, "bytes": 0, "errors": []}
    for database in _pitr_databases(environment):
        kept = _protected_bases(database, cutoff)
        if not kept:
            continue  # no base backup at all: the WAL is all there is, keep it
        oldest_needed = min(b.base_position.start_segment_number for b in kept)
        expired = WalSegment.objects.filter(
            database=database, stored_at__lt=cutoff, segment_number__lt=oldest_needed
        ).prefetch_related("destinations")
        for segment in expired:
            try:
                for destination in segment.destinations.all():
                    delete_artifact(destination, segment.key)
            except Exception as exc:  # noqa: BLE001 - retried next run
                errors.append(f"{segment.name}: {exc}")
                continue
            bytes_removed += segment.stored_size
            removed += 1
            segment.delete()
    return {"removed": removed, "bytes": bytes_removed, "errors": errors}


def pitr_monitor(*, environment: Environment, now: datetime | None = None) -> list[str]:
    """Raise or resolve the gap and lag alerts of the environment's PostgreSQL databases."""
    now = now or timezone.now()
    organisation = environment.project.organisation
    raised = []
    for database in _pitr_databases(environment):
        gaps = _gaps(database)
        if gaps:
            first = gaps[0]
            alert_raise(
                organisation=organisation,
                kind=AlertKind.WAL_ARCHIVING_FAILED,
                title=f"Gap in the WAL archive of {database.name}",
                message=(
                    f"{len(gaps)} gap(s); first: {first['missingSegments']} segment(s) missing "
                    f"from {first['firstMissingWal']} (after {first['afterWal']})."
                ),
                environment=environment,
                severity="critical",
                dedup_key=_gap_key(database),
            )
            raised.append(f"gap:{database.pk}")
        else:
            alert_resolve(organisation=organisation, dedup_key=_gap_key(database))
        behind = _segments_behind(database)
        archiver = WalArchiver.objects.filter(database=database).first()
        since = archiver.last_archived_at if archiver else None
        lagging = (
            behind is not None
            and behind > 1
            and (since is None or (now - since).total_seconds() > WAL_LAG_SECONDS)
        )
        lag_key = f"{AlertKind.WAL_LAG}:database:{database.pk}"
        if lagging:
            alert_raise(
                organisation=organisation,
                kind=AlertKind.WAL_LAG,
                title=f"WAL archiving of {database.name} is behind",
                message=(
                    f"{behind - 1} finished segment(s) not archived yet; last archived "
                    f"{_iso(since) or 'never'}."
                ),
                environment=environment,
                dedup_key=lag_key,
            )
            raised.append(f"lag:{database.pk}")
        elif behind is not None:
            alert_resolve(organisation=organisation, dedup_key=lag_key)
    return raised


def _segments_behind(database: Database) -> int | None:
    """How many segments the server's current WAL position is past our last archived one."""
    from backups.engines.postgresql import PostgreSQLEngine

    archiver = WalArchiver.objects.filter(database=database).first()
    try:
        with PostgreSQLEngine().connect(connection_spec_for(database)) as conn:
            row = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()
    except Exception:  # noqa: BLE001 - an unreachable server is another alert's business
        logger.info("could not read the WAL position of %s", database.pk)
        return None
    current = physical.parse_wal_name(str(row[0])).number if row else None
    if current is None:
        return None
    last = None
    if archiver and archiver.last_archived_wal:
        with contextlib.suppress(ValueError):
            last = physical.parse_wal_name(archiver.last_archived_wal).number
    if last is None:
        first = (
            WalSegment.objects.filter(database=database, kind=WalKind.SEGMENT)
            .order_by("-segment_number")
            .values_list("segment_number", flat=True)
            .first()
        )
        last = first
    return None if last is None else max(0, current - last)


def run_pitr_housekeeping() -> int:
    """Periodic: alerts and WAL retention for every environment with WAL archiving on."""
    count = 0
    for environment in Environment.objects.filter(schedule__wal_enabled=True).select_related(
        "schedule", "project__organisation"
    ):
        try:
            pitr_monitor(environment=environment)
            wal_retention_apply(environment=environment)
        except Exception:
            logger.exception("PITR housekeeping of %s failed", environment.pk)
        count += 1
    return count


__all__ = [
    "PitrRestoreResult",
    "WalArchiveFailed",
    "WalConflict",
    "WalFetchFailed",
    "base_backup_execute",
    "base_backup_request",
    "database_coverage",
    "pitr_check_target",
    "pitr_coverage",
    "pitr_monitor",
    "pitr_protected_backup_ids",
    "pitr_restore",
    "pitr_window",
    "run_base_backup",
    "run_pitr_housekeeping",
    "wal_archive",
    "wal_fetch",
    "wal_retention_apply",
]
