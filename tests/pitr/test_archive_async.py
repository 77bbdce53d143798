"""Asynchronous WAL archiving (``archive_wal --async``, pitr/wal_async.py and pitr/pusher.py)
against a real PostgreSQL 15 cluster: PostgreSQL hears "archived" only for what is stored and
recorded, a pusher killed between storing and recording loses nothing, and the archive
restores to a point in time."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from backups.models import BackupStatus, WalSegment
from backups.services import backup_claim
from pitr import wal_async
from pitr.base import base_backup_execute, base_backup_request
from pitr.coverage import pitr_coverage
from pitr.pusher import STALL_ENV
from pitr.wal_header import read_segment_header
from tests import factories
from tests.fixtures.worker import wait_for
from tests.pitr.conftest import switch_and_wait
from tests.pitr.helpers import recover_into

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def async_archive_command(database_id) -> str:
    manage = Path(settings.BASE_DIR) / "manage.py"
    argv = [sys.executable, "-S", str(manage), "archive_wal", "--async"]
    return " ".join(shlex.quote(a) for a in [*argv, "--database", str(database_id)]) + " %p %f"


def pusher_pid(database) -> int | None:
    path = Path(wal_async.database_spool(str(database.id))) / "pusher.pid"
    return int(path.read_text()) if path.exists() else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def pg_database(transactional_db, environment, archive_dir, monkeypatch):
    monkeypatch.setenv("STRONGBOX_WAL_ASYNC_IDLE_SECONDS", "5")
    factories.DestinationFactory(
        organisation=environment.project.organisation,
        name="WAL disk",
        config={"path": str(archive_dir)},
        is_default=True,
    )
    database = factories.DatabaseFactory(
        environment=environment,
        name="Orders",
        slug="orders",
        engine="postgresql",
        host="127.0.0.1",
        username="postgres",
        database_name="postgres",
    )
    yield database
    # The pushers this test's cluster started (each writes its pid): stop the last one.
    pid = pusher_pid(database)
    if pid and alive(pid):
        os.kill(pid, signal.SIGTERM)


def insert_batch(cluster, first: int, last: int) -> None:
    cluster.execute(
        "INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(%s::int, %s::int) g",
        first,
        last,
    )


def test_a_pusher_killed_between_storing_and_recording_loses_nothing_and_the_archive_restores(
    clusters, pg_database, pg_launcher, archive_dir, tmp_path, monkeypatch
):
    trigger = tmp_path / "stall"
    monkeypatch.setenv(STALL_ENV, str(trigger))
    primary = clusters("primary")
    pg_database.port = primary.port
    pg_database.save(update_fields=["port"])
    primary.init(archive=async_archive_command(pg_database.id))
    primary.start()
    primary.execute("CREATE TABLE orders (id integer PRIMARY KEY, label text)")
    insert_batch(primary, 1, 100)
    backup = base_backup_request(database=pg_database, enqueue=False)
    base = base_backup_execute(backup=backup_claim(backup_id=backup.id))
    assert base.status == BackupStatus.COMPLETED, base.message

    insert_batch(primary, 101, 200)
    time.sleep(1.1)
    target = primary.execute("SELECT clock_timestamp()")[0][0]
    time.sleep(1.1)
    insert_batch(primary, 201, 300)

    # The next file the pusher stores hangs it before the row is written: kill it there.
    trigger.touch()
    switched = primary.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    reached = Path(f"{trigger}.reached")
    wait_for(
        lambda: reached.exists() and reached.read_text().endswith("\n"),
        timeout=60,
        message=f"the pusher to stall; log: {primary.log_text()[-2000:]}",
    )
    stalled, pid = reached.read_text().split()
    assert not WalSegment.objects.filter(database=pg_database, name=stalled).exists()
    assert list(archive_dir.rglob(f"{stalled}*")), "stored before the kill"
    os.kill(int(pid), signal.SIGKILL)
    wait_for(lambda: not alive(int(pid)), timeout=10, message="the pusher to die")

    # PostgreSQL retries; a new pusher finds the stored file (same checksum) and records it.
    wait_for(
        lambda: WalSegment.objects.filter(database=pg_database, name=switched).exists(),
        timeout=90,
        message=f"{switched} to be archived after the kill; log: {primary.log_text()[-2000:]}",
    )
    assert pusher_pid(pg_database) != int(pid)
    insert_batch(primary, 301, 400)
    last = switch_and_wait(primary, pg_database)

    segment = WalSegment.objects.get(database=pg_database, name=stalled)
    assert segment.destinations.count() == 1
    coverage = pitr_coverage(environment=pg_database.environment)
    database = coverage["databases"][0]
    assert database["gaps"] == [], database["gaps"]
    assert coverage["status"] == "ok"
    assert database["archiving"]["lastArchivedWal"] >= last
    archived = WalSegment.objects.filter(database=pg_database, kind="segment")
    numbers = sorted(archived.values_list("segment_number", flat=True))
    assert numbers == list(range(numbers[0], numbers[-1] + 1))

    restored = clusters("restored")
    result = recover_into(restored, database=pg_database, target=target, launcher=pg_launcher)
    assert result.base_backup == base
    rows = restored.execute("SELECT min(id), max(id), count(*) FROM orders")[0]
    assert rows == (1, 200, 200)


def test_a_real_segment_header_names_its_segment_cluster_and_size(
    clusters, pg_database, pg_launcher
):
    primary = clusters("primary")
    primary.init(archive="/bin/false")  # nothing archived: the files stay in pg_wal
    primary.start()
    name = primary.execute("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    system_id = primary.execute("SELECT system_identifier FROM pg_control_system()")[0][0]
    header = read_segment_header(primary.datadir / "pg_wal" / name)
    assert header.server_major == 15
    assert header.system_identifier == system_id
    assert header.segment_size == 16 << 20 and header.block_size == 8192
    assert f"{header.timeline:08X}" == name[:8]
    assert header.segment_number == int(name[8:16], 16) * 256 + int(name[16:], 16)
