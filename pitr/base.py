"""Physical base backups (pg_basebackup) as Backup kind ``base``, method ``physical``.

They run through the same execution core as every other backup (``backups.execution``:
claim, heartbeat, abort, copies, checksum, the conditional final status write and its
alert); ``BaseBackupPlan`` says only what differs: the source is a ``pg_basebackup`` tar
stream, and a completed one records the WAL position it starts from.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backups.engines import EngineError
from backups.engines.postgresql import PostgreSQLEngine
from backups.execution import RunningSource, SourcePlan
from backups.models import (
    Backup,
    BackupKind,
    BackupMethod,
    BackupTrigger,
    BaseBackupPosition,
    WalKind,
    WalSegment,
)
from backups.services import (
    audit_backup_trigger,
    backup_execute,
    backup_name,
    connection_spec_for,
    enqueue_backup,
)
from config.errors import Conflict, InvalidInput
from organizations.models import Database
from organizations.services import environment_lock
from pitr import physical
from pitr.archive import (
    configured_pg_bin,
    record_backup_stop,
    require_postgresql,
    wal_destinations,
    wal_fetch,
)

logger = logging.getLogger(__name__)


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
            audit_backup_trigger(backup=backup, trigger=trigger, destinations=destinations)
    except IntegrityError as exc:
        raise Conflict(f"A backup of {database} is already running.") from exc
    if enqueue:
        # backups.tasks.run_backup runs it through the shared core, with BaseBackupPlan.
        transaction.on_commit(lambda: enqueue_backup(backup), robust=True)
    return backup


def base_backups_request(
    *,
    environment,
    database: Database | None = None,
    destination_ids: list | None = None,
    description: str = "",
    trigger: str = BackupTrigger.MANUAL,
    user=None,
) -> list[Backup]:
    """A base backup on demand (the manual trigger's type ``base``, the PITR page's button,
    ``manage.py backup_now --kind base``): one per PostgreSQL database of the environment
    (or just ``database``), each opening a recovery window as soon as it completes and its
    end's WAL is archived. Base backups go where the WAL goes (the schedule's destinations)."""
    schedule = getattr(environment, "schedule", None)
    if schedule is None or not schedule.wal_enabled:
        raise InvalidInput(
            f"Point-in-time recovery is off for {environment.name}: a base backup is only of use "
            "with its WAL. Turn on walEnabled in the environment's schedule first.",
            fields={"type": ["WAL archiving is off for this environment."]},
        )
    if destination_ids:
        raise InvalidInput(
            "A base backup is stored where the environment's WAL is (its schedule's "
            "destinations); it takes no destination of its own.",
            fields={"destination": ["Not taken by a base backup."]},
        )
    if database is not None:
        require_postgresql(database)
        databases = [database]
    else:
        databases = list(environment.databases.filter(engine="postgresql").order_by("name"))
        if not databases:
            raise InvalidInput(
                f"{environment.name} has no PostgreSQL database: base backups are PostgreSQL's.",
                fields={"type": ["No PostgreSQL database in this environment."]},
            )
    with transaction.atomic():
        return [
            base_backup_request(
                database=db,
                trigger=trigger,
                user=user,
                description=description or "Base backup on demand for point-in-time recovery",
            )
            for db in databases
        ]


def base_backup_execute(*, backup: Backup) -> Backup:
    """Run a claimed base backup to its end state: the one execution core of every kind
    (``backups.execution``), with ``BaseBackupPlan`` as its source."""
    return backup_execute(backup=backup)


class BaseBackupPlan(SourcePlan):
    """A ``pg_basebackup`` tar stream as the source of a backup; what it records at its end
    is the WAL position it starts from, which makes it the base of the WAL archived after."""

    kind = BackupKind.BASE
    extension = "tar"
    noun = "Base backup"

    def __init__(self, backup: Backup, database: Database):
        self.label = backup.name
        self.database = database
        self.spec = connection_spec_for(database)
        self.configured_bin = configured_pg_bin()
        self.stream: physical.BaseBackupStream | None = None

    @classmethod
    def for_backup(cls, backup: Backup) -> BaseBackupPlan:
        if backup.database is None:
            raise EngineError("The database of this backup no longer exists.")
        return cls(backup, backup.database)

    def open(self, source: RunningSource) -> None:
        version = _server_version(self.spec)
        major = (version or self.database.version or "").split(".")[0] or None
        pg_bin = physical.pg_bin_dir(major, configured=self.configured_bin)
        source.engine_version = version
        self.stream = source.start(
            lambda: physical.BaseBackupStream.open(self.spec, label=self.label, pg_bin=pg_bin)
        )
        source.stream = self.stream

    def record(self, backup: Backup, source: RunningSource) -> None:
        label = self.stream.label()
        start_number = physical.segment_number_of_lsn(label.start_lsn)
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
            database=self.database,
            timeline__gte=label.timeline,
            segment_number__gte=start_number,
        ).update(base_backup=backup)

    def after_completed(self, backup: Backup, source: RunningSource) -> None:
        _stop_from_archived_history(self.database, backup)


def _server_version(spec) -> str:
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
