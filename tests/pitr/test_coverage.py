"""Coverage windows, the choice of base backup, target validation and WAL retention, on
recorded segments (the real archive round trip is in test_archive and test_recovery)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from backups.models import BackupKind, BackupMethod, BackupStatus, WalSegment
from config.errors import Conflict, InvalidInput, Unprocessable
from pitr import physical
from pitr.archive import wal_archive
from pitr.base import base_backup_request
from pitr.coverage import pitr_check_target, pitr_coverage, pitr_validate_timestamp, pitr_window
from pitr.retention import pitr_protected_backup_ids, wal_retention_apply
from tests import factories
from tests.fixtures.tenants import DEFAULT_SLUG, tenant_path
from tests.pitr.helpers import base_backup

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def pg_database(environment, tmp_path):
    factories.DestinationFactory(
        organisation=environment.project.organisation,
        name="Disk",
        config={"path": str(tenant_path(DEFAULT_SLUG, "archive"))},
    )
    return factories.DatabaseFactory(
        environment=environment, name="Orders", slug="orders", engine="postgresql"
    )


def archive(database, tmp_path, number: int, last_xact: datetime) -> WalSegment:
    name = physical.segment_name(1, number)
    path = tmp_path / name
    path.write_bytes(name.encode() * 64)
    segment = wal_archive(database=database, path=path, name=name).segment
    WalSegment.objects.filter(pk=segment.pk).update(last_xact_at=last_xact, stored_at=last_xact)
    return segment


@pytest.fixture
def history(pg_database, tmp_path):
    """Base A at segment 2 (ends T0), WAL 2..5 hourly; base B at 6 (ends T0+5h), WAL 6..8."""
    a = base_backup(pg_database, start=2, stop_time=T0)
    for number in range(2, 6):
        archive(pg_database, tmp_path, number, T0 + timedelta(hours=number - 1))
    b = base_backup(pg_database, start=6, stop_time=T0 + timedelta(hours=5))
    for number in range(6, 9):
        archive(pg_database, tmp_path, number, T0 + timedelta(hours=number - 0.5))
    return a, b


def test_the_window_runs_from_the_first_base_backup_to_the_last_transaction(pg_database, history):
    a, b = history
    assert pitr_window(environment=pg_database.environment) == (
        T0 + timedelta(seconds=1),
        T0 + timedelta(hours=7.5),
    )
    coverage = pitr_coverage(environment=pg_database.environment)
    assert coverage["earliestRecoverableTime"] == "2026-11-01T00:00:01Z"
    assert coverage["latestRecoverableTime"] == "2026-11-01T07:30:00Z"
    assert [base["id"] for base in coverage["baseBackups"]] == [str(a.id), str(b.id)]
    database = coverage["databases"][0]
    assert database["gaps"] == []
    assert database["archiving"]["lastArchivedWal"] == physical.segment_name(1, 8)
    assert database["walFiles"] == 7


def test_the_latest_base_backup_that_ended_before_the_target_is_chosen(pg_database, history):
    a, b = history
    assert pitr_check_target(database=pg_database, target=T0 + timedelta(hours=2)).base == a
    assert pitr_check_target(database=pg_database, target=T0 + timedelta(hours=6)).base == b


def test_a_target_outside_the_window_is_refused_with_the_window(pg_database, history):
    with pytest.raises(Unprocessable) as refused:
        pitr_validate_timestamp(
            environment=pg_database.environment, timestamp=T0 - timedelta(hours=1)
        )
    assert "2026-11-01T00:00:01Z to 2026-11-01T07:30:00Z" in refused.value.message
    assert "pitr_timestamp" in refused.value.fields
    with pytest.raises(Unprocessable, match="outside"):
        pitr_check_target(database=pg_database, target=T0 + timedelta(hours=8))


def test_a_gap_cuts_the_window_of_the_base_backup_before_it(pg_database, history):
    a, b = history
    WalSegment.objects.filter(name=physical.segment_name(1, 4)).delete()
    coverage = pitr_coverage(environment=pg_database.environment)
    database = coverage["databases"][0]
    assert database["gaps"][0]["firstMissingWal"] == physical.segment_name(1, 4)
    assert coverage["status"] == "gaps"
    windows = {w["baseBackupId"]: (w["from"], w["to"]) for w in database["windows"]}
    assert windows[str(a.id)] == ("2026-11-01T00:00:01Z", "2026-11-01T02:00:00Z")
    assert windows[str(b.id)][1] == "2026-11-01T07:30:00Z"
    with pytest.raises(Unprocessable):
        pitr_check_target(database=pg_database, target=T0 + timedelta(hours=3))


def test_retention_removes_old_wal_no_kept_base_backup_needs(pg_database, history, tmp_path):
    a, b = history
    factories.ScheduleFactory(
        environment=pg_database.environment, wal_enabled=True, wal_retention_days=1
    )
    pg_database.environment.refresh_from_db()
    # While the time only A can reach (until B is usable) is inside retention, A is kept.
    early = T0 + timedelta(days=1, hours=4)
    assert pitr_protected_backup_ids(environment=pg_database.environment, now=early) == {
        a.pk,
        b.pk,
    }
    kept = wal_retention_apply(environment=pg_database.environment, now=early)
    assert kept["removed"] == 0 and kept["baseBackupsDeleted"] == []

    later = T0 + timedelta(days=1, hours=6)
    assert pitr_protected_backup_ids(environment=pg_database.environment, now=later) == {b.pk}
    result = wal_retention_apply(environment=pg_database.environment, now=later)
    assert result["removed"] == 4 and result["errors"] == []
    assert result["baseBackupsDeleted"] == [str(a.pk)]
    a.refresh_from_db()
    assert a.status == BackupStatus.DELETING
    left = WalSegment.objects.filter(database=pg_database).order_by("segment_number")
    assert [s.segment_number for s in left] == [6, 7, 8]
    stored = sorted(p.name for p in (tenant_path(DEFAULT_SLUG, "archive")).rglob("*.zst.enc"))
    assert stored == [f"{physical.segment_name(1, n)}.zst.enc" for n in (6, 7, 8)]


def test_base_backups_are_for_postgresql_and_one_at_a_time(pg_database, environment):

    sqlite = factories.DatabaseFactory(environment=environment, engine="sqlite")
    with pytest.raises(InvalidInput, match="PostgreSQL only"):
        base_backup_request(database=sqlite, enqueue=False)
    backup = base_backup_request(database=pg_database, enqueue=False)
    assert (backup.kind, backup.method, backup.status) == (
        BackupKind.BASE,
        BackupMethod.PHYSICAL,
        BackupStatus.SCHEDULED,
    )
    assert backup.name.endswith("-orders-base")
    with pytest.raises(Conflict):
        base_backup_request(database=pg_database, enqueue=False)


def test_a_target_without_a_time_zone_is_invalid(pg_database, history):

    with pytest.raises(InvalidInput):
        pitr_validate_timestamp(
            environment=pg_database.environment, timestamp=datetime(2026, 11, 1, 3)
        )


def test_archive_wal_exits_non_zero_for_an_unknown_database(db, tmp_path):

    with pytest.raises(CommandError, match="no database"):
        call_command("archive_wal", "--database", "3b1e0c9e-0000-0000-0000-000000000000", "p", "f")


def test_a_recovery_that_would_fill_the_disk_is_refused_before_extracting(
    pg_database, history, tmp_path, monkeypatch
):
    from collections import namedtuple

    from pitr import restore as pitr_restore_module
    from pitr.restore import pitr_restore

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(
        pitr_restore_module.shutil, "disk_usage", lambda path: usage(10 << 30, 10 << 30, 1 << 20)
    )
    with pytest.raises(physical.RecoveryFailed, match="GB are free"):
        pitr_restore(
            database=pg_database,
            target=T0 + timedelta(hours=2),
            datadir=tmp_path / "copy" / "data",
            port=1,
            launcher=(),
        )
    assert not (tmp_path / "copy" / "data").exists()
