"""Rows the PITR tests build: a completed base backup and where its WAL starts."""

from __future__ import annotations

from datetime import datetime, timedelta

from backups.models import BackupKind, BackupMethod, BaseBackupPosition
from pitr import physical
from pitr.restore import pitr_restore
from tests import factories
from tests.pitr.conftest import child_env


def base_backup(database, *, start: int, stop_time: datetime):
    """A completed base backup of ``database`` starting (and stopping) in WAL segment
    ``start`` of timeline 1, its backup stopping at ``stop_time``."""
    backup = factories.BackupFactory(
        environment=database.environment,
        database=database,
        kind=BackupKind.BASE,
        method=BackupMethod.PHYSICAL,
        created_at=stop_time - timedelta(minutes=1),
        completed_at=stop_time + timedelta(seconds=5),
    )
    BaseBackupPosition.objects.create(
        backup=backup,
        timeline=1,
        start_lsn=f"0/{start:X}000028",
        start_wal=physical.segment_name(1, start),
        start_segment_number=start,
        stop_wal=physical.segment_name(1, start),
        stop_time=stop_time,
    )
    return backup


def recover_into(restored, *, database, target: datetime, launcher):
    """Recover ``database`` to ``target`` into the throwaway cluster ``restored`` (its data
    directory, port and socket), as the PITR restore does it; the result of ``pitr_restore``."""
    return pitr_restore(
        database=database,
        target=target,
        datadir=restored.root / "data",
        port=restored.port,
        socket_dir=restored.root,
        launcher=launcher,
        env=child_env(),
        timeout=120,
    )
