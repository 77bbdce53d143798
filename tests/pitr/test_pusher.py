"""The resident pusher's bookkeeping (pitr/pusher.py), run in-process over a pg_wal of plain
files: a file it stored is answered again without being archived again, and an answer
PostgreSQL no longer needs is removed. The cluster-level behaviour (kills, recovery) is
tests/pitr/test_archive_async.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.models import Alert
from backups.models import WalSegment
from pitr import pusher as pusher_module
from pitr import wal_async
from pitr.archive import gap_key
from pitr.pusher import Pusher
from tests import factories
from tests.fixtures.tenants import DEFAULT_SLUG, tenant_path

FIRST, SECOND = "000000010000000000000011", "000000010000000000000012"


@pytest.fixture
def pg_database(transactional_db, environment):
    factories.DestinationFactory(
        organisation=environment.project.organisation,
        name="WAL disk",
        config={"path": str(tenant_path(DEFAULT_SLUG, "wal"))},
        is_default=True,
    )
    return factories.DatabaseFactory(
        environment=environment, name="Orders", slug="orders", engine="postgresql"
    )


@pytest.fixture
def pg_wal(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("STRONGBOX_WAL_SPOOL_DIR", str(tmp_path / "spool"))
    path = tmp_path / "pg_wal"
    (path / "archive_status").mkdir(parents=True)
    return path


@pytest.fixture
def archived(monkeypatch) -> list[str]:
    """The names the pusher really archived (through pitr.archive.wal_archive)."""
    names: list[str] = []
    real = pusher_module.wal_archive

    def counting(**kwargs):
        names.append(kwargs["name"])
        return real(**kwargs)

    monkeypatch.setattr(pusher_module, "wal_archive", counting)
    return names


def make_ready(pg_wal: Path, name: str) -> None:
    (pg_wal / name).write_bytes(name.encode() * 4096)
    (pg_wal / "archive_status" / f"{name}.ready").touch()


def mark_done(pg_wal: Path, name: str) -> None:
    """What PostgreSQL does once the archive_command for ``name`` exited 0."""
    status = pg_wal / "archive_status"
    (status / f"{name}.ready").rename(status / f"{name}.done")


def new_pusher(database, pg_wal: Path) -> Pusher:
    return Pusher(database=database, pg_wal=pg_wal, processes=2, queue_max=1 << 30, idle_seconds=1)


def run_until_idle(pusher: Pusher) -> None:
    pusher.idle_seconds = 0.3
    pusher.run()


def test_a_file_it_stored_is_answered_again_without_archiving_it_again(
    pg_database, pg_wal, archived
):
    make_ready(pg_wal, FIRST)
    make_ready(pg_wal, SECOND)
    pusher = new_pusher(pg_database, pg_wal)
    run_until_idle(pusher)
    spool = wal_async.database_spool(str(pg_database.id))
    assert sorted(archived) == [FIRST, SECOND]
    assert WalSegment.objects.filter(database=pg_database).count() == 2
    assert not Alert.objects.filter(dedup_key=gap_key(pg_database)).exists()
    assert wal_async.ok_matches(spool, FIRST, str(pg_wal / FIRST))

    # A command took FIRST's answer; PostgreSQL has not marked it done yet (or the command
    # died before exiting): the pusher answers again from memory.
    Path(wal_async.ok_path(spool, FIRST)).unlink()
    run_until_idle(pusher)
    assert sorted(archived) == [FIRST, SECOND]
    assert wal_async.ok_matches(spool, FIRST, str(pg_wal / FIRST))

    # A file changed since it was stored (recycled under the same name) is archived again.
    Path(wal_async.ok_path(spool, SECOND)).unlink()
    (pg_wal / SECOND).write_bytes(b"other content" * 1000)
    run_until_idle(pusher)
    assert sorted(archived) == [FIRST, SECOND, SECOND]
    assert Path(wal_async.error_path(spool, SECOND)).exists()  # a conflict: refused


def test_an_answer_postgresql_no_longer_needs_is_removed(pg_database, pg_wal, archived):
    make_ready(pg_wal, FIRST)
    make_ready(pg_wal, SECOND)
    pusher = new_pusher(pg_database, pg_wal)
    run_until_idle(pusher)
    spool = wal_async.database_spool(str(pg_database.id))
    # FIRST was acknowledged (its .ok taken, then done); SECOND's .ok is left over from a
    # command that never came (PostgreSQL recycled the file after a restart, say).
    Path(wal_async.ok_path(spool, FIRST)).unlink()
    mark_done(pg_wal, FIRST)
    mark_done(pg_wal, SECOND)
    run_until_idle(pusher)
    assert not Path(wal_async.ok_path(spool, FIRST)).exists()
    assert not Path(wal_async.ok_path(spool, SECOND)).exists()
    assert sorted(archived) == [FIRST, SECOND]


def test_a_segment_after_a_missing_one_raises_the_gap_alert(pg_database, pg_wal, archived):
    after_gap = "000000010000000000000014"
    for name in (FIRST, SECOND, after_gap):  # ...13 never reached the archive
        make_ready(pg_wal, name)
    pusher = new_pusher(pg_database, pg_wal)
    run_until_idle(pusher)
    gaps = Alert.objects.filter(dedup_key=gap_key(pg_database), resolved_at__isnull=True)
    assert [alert.title for alert in gaps] == ["Gap in the WAL archive of Orders"]
    assert f"{after_gap} was archived but the segments after {SECOND}" in gaps[0].message
