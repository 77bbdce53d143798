"""Base backups run through the one execution core: a heartbeat on a timer while
pg_basebackup is silent, and a final status write that never overrides the reaper.

Real PostgreSQL 15 clusters. Their archive_command can be held (it waits for a file before
archiving): pg_basebackup then sends the data directory and waits, silent, until the WAL it
needs is archived, as it does in production while archiving is slow or broken.
"""

from __future__ import annotations

import shlex
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertKind
from backups import execution
from backups.models import Backup, BackupStatus, BaseBackupPosition, CopyStatus, WalSegment
from backups.services import backup_abort, backup_claim, backups_reap_stale
from pitr.base import base_backup_execute, base_backup_request
from tests import factories
from tests.backups.helpers import run_in_thread
from tests.fixtures.worker import wait_for
from tests.pitr.conftest import archive_command, switch_and_wait
from tests.pitr.helpers import recover_into
from tests.reliability.helpers import files_under

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

HEARTBEAT_TIMEOUT = 2


@pytest.fixture
def pg_database(transactional_db, settings, environment, archive_dir):
    settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS = HEARTBEAT_TIMEOUT
    factories.DestinationFactory(
        organisation=environment.project.organisation,
        name="WAL disk",
        config={"path": str(archive_dir)},
        is_default=True,
    )
    return factories.DatabaseFactory(
        environment=environment,
        name="Orders",
        slug="orders",
        engine="postgresql",
        host="127.0.0.1",
        username="postgres",
        database_name="postgres",
    )


@pytest.fixture
def archive_gate(tmp_path):
    """A file whose existence lets the cluster's archive_command go on."""
    return tmp_path / "archiving-may-go"


def started_cluster(clusters, database, gate=None):
    cluster = clusters("primary")
    database.port = cluster.port
    database.save(update_fields=["port"])
    command = archive_command(database.id)
    if gate is not None:
        command = f"while test ! -e {shlex.quote(str(gate))}; do sleep 0.1; done; {command}"
    cluster.init(archive=command)
    cluster.start()
    cluster.execute("CREATE TABLE orders (id integer PRIMARY KEY, label text)")
    cluster.execute("INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 100) g")
    return cluster


def waiting_for_wal_archive(cluster) -> bool:
    rows = cluster.execute(
        "SELECT 1 FROM pg_stat_activity"
        " WHERE backend_type = 'walsender' AND wait_event = 'BackupWaitWalArchive'"
    )
    return bool(rows)


def start_silent_base_backup(cluster, database):
    """A base backup running on a thread, once pg_basebackup has sent everything and waits
    for the WAL archive: from then on no byte flows."""
    backup = base_backup_request(database=database, enqueue=False)
    runner = run_in_thread(backup)
    wait_for(
        lambda: waiting_for_wal_archive(cluster),
        timeout=60,
        message=f"pg_basebackup to wait for WAL archiving; log: {cluster.log_text()[-2000:]}",
    )
    return backup, runner


def test_a_base_backup_silent_for_longer_than_the_heartbeat_timeout_is_kept_alive(
    clusters, pg_database, archive_gate, pg_launcher
):
    primary = started_cluster(clusters, pg_database, gate=archive_gate)
    backup, runner = start_silent_base_backup(primary, pg_database)
    first = Backup.objects.get(pk=backup.pk).heartbeat_at
    wait_for(
        lambda: Backup.objects.get(pk=backup.pk).heartbeat_at > first + timedelta(seconds=1),
        timeout=30,
        message="the last progress of the data directory to be written",
    )
    silent_from = Backup.objects.get(pk=backup.pk)

    # Twice the reaper's timeout without a byte from pg_basebackup...
    wait_for(
        lambda: (
            Backup.objects.get(pk=backup.pk).heartbeat_at
            > silent_from.heartbeat_at + timedelta(seconds=2 * HEARTBEAT_TIMEOUT)
        ),
        timeout=30,
        message="the heartbeat to go on while pg_basebackup is silent",
    )
    assert waiting_for_wal_archive(primary)
    assert Backup.objects.get(pk=backup.pk).bytes_done == silent_from.bytes_done
    # ...and the reaper, which runs every minute, finds it alive.
    assert backups_reap_stale() == []
    assert Backup.objects.get(pk=backup.pk).status == BackupStatus.IN_PROGRESS

    archive_gate.touch()
    runner.join(timeout=120)
    assert not runner.is_alive()
    backup.refresh_from_db()
    assert backup.status == BackupStatus.COMPLETED, backup.message
    assert backup.copies.get().status == CopyStatus.STORED
    assert BaseBackupPosition.objects.filter(backup=backup).exists()

    # It restores: recovery from it to a point after its end finds the rows it holds.
    primary.execute("INSERT INTO orders SELECT g, 'later' FROM generate_series(101, 150) g")
    time.sleep(1.1)  # a target strictly after the last commit, on the server's clock
    target = primary.execute("SELECT clock_timestamp()")[0][0]
    primary.execute("INSERT INTO orders VALUES (151, 'after the target')")
    switch_and_wait(primary, pg_database)
    restored = clusters("restored")
    result = recover_into(restored, database=pg_database, target=target, launcher=pg_launcher)
    assert result.base_backup == backup
    assert restored.execute("SELECT min(id), max(id), count(*) FROM orders")[0] == (1, 150, 150)


def test_a_base_backup_the_reaper_failed_while_it_was_silent_is_never_marked_completed(
    clusters, pg_database, archive_gate, archive_dir
):
    primary = started_cluster(clusters, pg_database, gate=archive_gate)
    backup, runner = start_silent_base_backup(primary, pg_database)

    # A reaper whose clock says the heartbeat is stale (as after a long stall of the worker).
    later = timezone.now() + timedelta(seconds=HEARTBEAT_TIMEOUT + 5)
    assert [b.pk for b in backups_reap_stale(now=later)] == [backup.pk]
    runner.join(timeout=60)
    assert not runner.is_alive()
    archive_gate.touch()  # the WAL it waited for arrives; too late

    _assert_left_failed_by_the_reaper(backup, archive_dir)


def test_a_base_backup_reaped_after_its_upload_but_before_its_final_write_stays_failed(
    monkeypatch, clusters, pg_database, archive_dir
):
    started_cluster(clusters, pg_database)
    backup = base_backup_request(database=pg_database, enqueue=False)
    verify = execution._verify_fresh_copy

    def verify_then_reap(*args, **kwargs):
        verify(*args, **kwargs)
        later = timezone.now() + timedelta(seconds=HEARTBEAT_TIMEOUT + 5)
        assert [b.pk for b in backups_reap_stale(now=later)] == [backup.pk]

    monkeypatch.setattr(execution, "_verify_fresh_copy", verify_then_reap)
    base_backup_execute(backup=backup_claim(backup_id=backup.id))

    _assert_left_failed_by_the_reaper(backup, archive_dir)


def test_an_aborted_silent_base_backup_stops_pg_basebackup_and_keeps_nothing(
    clusters, pg_database, archive_gate, archive_dir
):
    primary = started_cluster(clusters, pg_database, gate=archive_gate)
    backup, runner = start_silent_base_backup(primary, pg_database)

    backup_abort(backup=Backup.objects.get(pk=backup.pk))
    runner.join(timeout=60)
    assert not runner.is_alive()
    archive_gate.touch()

    backup.refresh_from_db()
    assert backup.status == BackupStatus.ABORTED, backup.message
    assert backup.copies.get().status == CopyStatus.FAILED
    assert not BaseBackupPosition.objects.filter(backup=backup).exists()
    assert _artifacts_of(backup, archive_dir) == []


def _artifacts_of(backup, archive_dir) -> list:
    return [p for p in files_under(archive_dir) if backup.name in p.name]


def _assert_left_failed_by_the_reaper(backup, archive_dir) -> None:
    backup.refresh_from_db()
    assert backup.status == BackupStatus.FAILED
    assert "stopped responding" in backup.message
    assert backup.copies.get().status == CopyStatus.FAILED
    assert _artifacts_of(backup, archive_dir) == []
    assert not BaseBackupPosition.objects.filter(backup=backup).exists()
    assert not WalSegment.objects.filter(base_backup=backup).exists()
    assert Alert.objects.filter(kind=AlertKind.BACKUP_FAILED, backup=backup).count() == 1
