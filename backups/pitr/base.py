"""Physical base backups (pg_basebackup) as Backup kind ``base``, method ``physical``."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts.models import AlertKind
from alerts.services import alert_raise, alert_resolve
from backups.engines import EngineError, EngineUnavailable
from backups.engines import postgresql_physical as physical
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
    WalKind,
    WalSegment,
)
from backups.pipeline import PipelineCancelled, PipelineError, run_pipeline
from backups.pitr.archive import (
    configured_pg_bin,
    record_backup_stop,
    require_postgresql,
    wal_destinations,
    wal_fetch,
)
from backups.services import (
    artifact_key,
    backup_claim,
    backup_name,
    connection_spec_for,
    enqueue_backup,
    pipeline_options_for,
)
from config.errors import Conflict
from destinations.storage import artifact_size, open_sink
from organizations.models import Database
from organizations.services import environment_lock

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 0.5
ABORT_CHECK_INTERVAL = 1.0


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
    require_postgresql(database)
    environment = database.environment
    if schedule is None:
        schedule = getattr(environment, "schedule", None)
    destinations = wal_destinations(database=database)
    created_at = timezone.now()
    name = backup_name(environment, created_at, f"{database.slug}-base")
    try:
        with transaction.atomic():
            environment_lock(environment=environment)  # against a concurrent delete of it
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
        # backups.tasks.run_backup hands base backups to base_backup_execute.
        transaction.on_commit(lambda: enqueue_backup(backup), robust=True)
    return backup


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
        pg_bin = physical.pg_bin_dir(major, configured=configured_pg_bin())
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
                record_backup_stop(database, target)


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
    # The status and its alert commit together, as for logical backups.
    with transaction.atomic():
        _update(
            backup, status=BackupStatus.FAILED, message=message[-8000:], phases=phases, **fields
        )
        alert_raise(
            organisation=backup.organisation,
            kind=AlertKind.BACKUP_FAILED,
            title=f"Base backup {backup.name} failed",
            message=message[-2000:],
            environment=backup.environment,
            backup=backup,
            severity="critical",
        )
