"""Point-in-time recovery against real PostgreSQL 15 clusters created by the tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from alerts.models import Alert, AlertKind
from backups.models import BackupKind, BackupMethod, BackupStatus, WalArchiver, WalSegment
from backups.services import backup_claim
from config.errors import Unprocessable
from pitr import retention as pitr_retention
from pitr.base import base_backup_execute, base_backup_request
from pitr.coverage import pitr_coverage, pitr_window
from pitr.restore import pitr_restore
from pitr.retention import pitr_monitor
from tests import factories
from tests.fixtures.worker import wait_for
from tests.pitr.conftest import archive_command, child_env, switch_and_wait

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def pg_database(transactional_db, environment, archive_dir):
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


def started_cluster(clusters, database):
    cluster = clusters("primary")
    database.port = cluster.port
    database.save(update_fields=["port"])
    cluster.init(archive=archive_command(database.id))
    cluster.start()
    return cluster


def insert_batch(cluster, first: int, last: int) -> None:
    cluster.execute(
        "INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(%s::int, %s::int) g",
        first,
        last,
    )


def test_it_restores_exactly_the_rows_committed_before_the_target(
    clusters, pg_database, pg_launcher, tmp_path
):
    primary = started_cluster(clusters, pg_database)
    primary.execute("CREATE TABLE orders (id integer PRIMARY KEY, label text)")
    insert_batch(primary, 1, 100)

    backup = base_backup_request(database=pg_database, enqueue=False)
    base = base_backup_execute(backup=backup_claim(backup_id=backup.id))
    assert base.status == BackupStatus.COMPLETED, base.message
    assert (base.kind, base.method) == (BackupKind.BASE, BackupMethod.PHYSICAL)
    assert base.copies.get().key.endswith(f"/base/{base.name}.tar.zst.enc")

    insert_batch(primary, 101, 200)
    time.sleep(1.1)
    target = primary.execute("SELECT clock_timestamp()")[0][0]
    time.sleep(1.1)
    insert_batch(primary, 201, 300)
    last = switch_and_wait(primary, pg_database)

    segment = WalSegment.objects.get(database=pg_database, name=last)
    assert segment.base_backup == base
    assert segment.key.startswith("quant-gov/dashboard/staging/wal/orders/")
    assert segment.key.endswith(".zst.enc")
    earliest, latest = pitr_window(environment=pg_database.environment)
    assert earliest <= target <= latest
    coverage = pitr_coverage(environment=pg_database.environment)
    assert coverage["status"] == "ok"
    assert coverage["baseBackups"][0]["id"] == str(base.id)
    assert coverage["databases"][0]["archiving"]["lastArchivedWal"] >= last

    with pytest.raises(Unprocessable, match="outside the point-in-time recovery coverage"):
        pitr_restore(
            database=pg_database,
            target=latest + timedelta(hours=1),
            datadir=tmp_path / "never",
            port=1,
        )

    restored = clusters("restored")
    restored.datadir = restored.root / "data"
    result = pitr_restore(
        database=pg_database,
        target=target,
        datadir=restored.datadir,
        port=restored.port,
        socket_dir=restored.root,
        launcher=pg_launcher,
        env=child_env(),
        timeout=120,
    )
    assert result.base_backup == base
    assert "recovery stopping before commit" in result.stopped_at
    rows = restored.execute("SELECT min(id), max(id), count(*) FROM orders")[0]
    assert rows == (1, 200, 200)
    assert restored.execute("SELECT pg_is_in_recovery()")[0][0] is False
    # The copy does not archive into the original's archive.
    assert restored.execute("SHOW archive_mode")[0][0] == "off"


def test_a_missing_segment_is_reported_as_a_gap(pg_database, tmp_path):
    names = ["000000010000000000000001", "000000010000000000000002", "000000010000000000000004"]
    from pitr.archive import wal_archive

    for name in names:
        path = tmp_path / name
        path.write_bytes(name.encode() * 100)
        wal_archive(database=pg_database, path=path, name=name)

    gaps = pitr_coverage(environment=pg_database.environment)["databases"][0]["gaps"]
    assert gaps == [
        {
            "timeline": 1,
            "afterWal": names[1],
            "beforeWal": names[2],
            "firstMissingWal": "000000010000000000000003",
            "missingSegments": 1,
            "reason": "not-archived",
            "lostWal": [],
            "problem": None,
        }
    ]
    alert = Alert.objects.get(kind=AlertKind.WAL_ARCHIVING_FAILED, resolved_at__isnull=True)
    assert "Gap" in alert.title


def run_archive_wal(database, path: Path, name: str) -> subprocess.CompletedProcess:
    manage = Path(settings.BASE_DIR) / "manage.py"
    return subprocess.run(  # noqa: S603
        [
            sys.executable,
            str(manage),
            "archive_wal",
            "--database",
            str(database.id),
            str(path),
            name,
        ],
        capture_output=True,
        env={**__import__("os").environ, **child_env()},
        timeout=60,
        check=False,
    )


def test_archiving_fails_while_the_destination_is_unreachable_and_loses_nothing(
    clusters, pg_database, archive_dir, monkeypatch
):
    primary = started_cluster(clusters, pg_database)
    primary.execute("CREATE TABLE orders (id integer PRIMARY KEY, label text)")
    insert_batch(primary, 1, 10)
    first = switch_and_wait(primary, pg_database)

    # The destination disappears: its directory is replaced by a plain file.
    away = archive_dir.with_name("archive.away")
    archive_dir.rename(away)
    archive_dir.write_text("not a directory")
    insert_batch(primary, 11, 20)
    stuck = primary.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    wait_for(
        lambda: primary.execute("SELECT failed_count FROM pg_stat_archiver")[0][0] > 0,
        timeout=60,
        message="a failed archive attempt",
    )
    assert not WalSegment.objects.filter(database=pg_database, name=stuck).exists()
    archiver = WalArchiver.objects.get(database=pg_database)
    assert archiver.consecutive_failures > 0
    assert archiver.last_failed_wal == stuck
    assert pitr_coverage(environment=pg_database.environment)["status"] == "failing"
    assert Alert.objects.filter(
        kind=AlertKind.WAL_ARCHIVING_FAILED, resolved_at__isnull=True
    ).exists()
    # Finished segments wait on the server: with no tolerance left, that is a lag alert.
    monkeypatch.setattr(pitr_retention, "WAL_LAG_SECONDS", 0)
    assert f"lag:{pg_database.pk}" in pitr_monitor(environment=pg_database.environment)
    assert Alert.objects.filter(kind=AlertKind.WAL_LAG, resolved_at__isnull=True).exists()
    # The command itself says why and exits non-zero.
    copy = archive_dir.parent / "stuck-copy"
    shutil.copy(primary.datadir / "pg_wal" / stuck, copy)
    failed = run_archive_wal(pg_database, copy, stuck)
    assert failed.returncode != 0
    assert f"{stuck} NOT archived" in failed.stderr.decode()

    # Back again: PostgreSQL retries and every segment lands, in order, without a gap.
    archive_dir.unlink()
    away.rename(archive_dir)
    insert_batch(primary, 21, 30)
    last = switch_and_wait(primary, pg_database)
    wait_for(
        lambda: WalSegment.objects.filter(database=pg_database, name=stuck).exists(),
        timeout=60,
        message=f"{stuck} archived after the destination came back",
    )
    numbers = list(
        WalSegment.objects.filter(database=pg_database, kind="segment")
        .order_by("segment_number")
        .values_list("segment_number", flat=True)
    )
    assert numbers == list(range(numbers[0], numbers[-1] + 1))
    assert WalSegment.objects.filter(database=pg_database, name=first).exists()
    assert WalSegment.objects.filter(database=pg_database, name=last).exists()
    for segment in WalSegment.objects.filter(database=pg_database):
        assert (archive_dir / segment.key).is_file()
    assert WalArchiver.objects.get(database=pg_database).consecutive_failures == 0
    assert pitr_monitor(environment=pg_database.environment) == []
    assert not Alert.objects.filter(kind=AlertKind.WAL_LAG, resolved_at__isnull=True).exists()
    assert not Alert.objects.filter(
        kind=AlertKind.WAL_ARCHIVING_FAILED, resolved_at__isnull=True
    ).exists()
    # Archiving the same file again is harmless; different content is refused.
    again = run_archive_wal(pg_database, copy, stuck)
    assert again.returncode == 0, again.stderr.decode()
    copy.write_bytes(b"something else")
    refused = run_archive_wal(pg_database, copy, stuck)
    assert refused.returncode != 0
    assert "refusing to overwrite" in refused.stderr.decode()
