"""archive_wal stores the next ready WAL files too, and PostgreSQL's archive_command for
them is answered from a marker before Django starts (pitr/wal_spool.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from backups.models import WalSegment
from pitr import wal_spool
from tests import factories
from tests.fixtures.tenants import DEFAULT_SLUG, tenant_path
from tests.pitr.conftest import child_env

NAMES = [f"0000000100000000000000{n:02X}" for n in (7, 8, 9, 10)]


@pytest.fixture
def pg_database(environment, tmp_path):
    factories.DestinationFactory(
        organisation=environment.project.organisation,
        name="A local disk",
        config={"path": str(tenant_path(DEFAULT_SLUG, "archive"))},
        is_default=True,
    )
    return factories.DatabaseFactory(
        environment=environment, name="Orders", slug="orders", engine="postgresql"
    )


@pytest.fixture
def datadir(tmp_path):
    """A data directory as PostgreSQL's archiver sees it: four finished files marked ready."""
    root = tmp_path / "data"
    (root / "pg_wal" / "archive_status").mkdir(parents=True)
    for name in NAMES:
        (root / "pg_wal" / name).write_bytes(name.encode() * 4000)
        (root / "pg_wal" / "archive_status" / f"{name}.ready").touch()
    return root


def archive_command(datadir: Path, database, name: str, *extra: str, env=None):
    """Run archive_wal as PostgreSQL does: from the data directory, %p relative to it."""
    manage = Path(settings.BASE_DIR) / "manage.py"
    return subprocess.run(  # noqa: S603
        [sys.executable, str(manage), "archive_wal", "--database", str(database.id), *extra]
        + [f"pg_wal/{name}", name],
        cwd=datadir,
        capture_output=True,
        env={**os.environ, **child_env(), **(env or {})},
        timeout=60,
        check=False,
    )


def postgres_marks_done(datadir: Path, name: str) -> None:
    status = datadir / "pg_wal" / "archive_status"
    (status / f"{name}.ready").rename(status / f"{name}.done")


@pytest.mark.django_db(transaction=True)
def test_ready_files_are_archived_ahead_and_answered_without_django(pg_database, datadir):
    first = archive_command(datadir, pg_database, NAMES[0], "--ahead", "2")
    assert first.returncode == 0, first.stderr.decode()
    postgres_marks_done(datadir, NAMES[0])
    stored = set(WalSegment.objects.filter(database=pg_database).values_list("name", flat=True))
    assert stored == set(NAMES[:3])
    spool = Path(settings.STRONGBOX_WAL_SPOOL_DIR) / str(pg_database.id)
    assert sorted(p.name for p in spool.iterdir()) == NAMES[1:3]

    # A settings module that does not exist: only the fast path can succeed.
    no_django = {"DJANGO_SETTINGS_MODULE": "no.such.settings"}
    started = time.monotonic()
    fast = archive_command(datadir, pg_database, NAMES[1], env=no_django)
    assert fast.returncode == 0, fast.stderr.decode()
    # No Django start-up: the settings module above does not exist. The bound only catches a
    # fast path gone slow (it was 1.5 s, overrun by a bare interpreter at a load of 20).
    assert time.monotonic() - started < 5.0
    assert not (spool / NAMES[1]).exists()  # consumed
    postgres_marks_done(datadir, NAMES[1])

    # A file whose content changed since is not taken on trust: the full command refuses it.
    (datadir / "pg_wal" / NAMES[2]).write_bytes(b"something else")
    changed = archive_command(datadir, pg_database, NAMES[2], env=no_django)
    assert changed.returncode != 0
    refused = archive_command(datadir, pg_database, NAMES[2], "--ahead", "0")
    assert refused.returncode != 0
    assert "refusing to overwrite" in refused.stderr.decode()

    # Not archived ahead: the full command stores it.
    last = archive_command(datadir, pg_database, NAMES[3], "--ahead", "0")
    assert last.returncode == 0, last.stderr.decode()
    assert WalSegment.objects.filter(database=pg_database, name=NAMES[3]).exists()


def test_the_order_is_postgresqls_history_files_first(tmp_path):
    from pitr.archive import ready_wal_files

    pg_wal = tmp_path / "pg_wal"
    (pg_wal / "archive_status").mkdir(parents=True)
    for name in (NAMES[1], "00000002.history", NAMES[0], "not-a-wal-file"):
        (pg_wal / name).write_bytes(b"x")
        (pg_wal / "archive_status" / f"{name}.ready").touch()
    (pg_wal / "archive_status" / f"{NAMES[2]}.ready").touch()  # its file is gone
    assert ready_wal_files(pg_wal, skip=NAMES[1]) == ["00000002.history", NAMES[0]]


def test_the_fast_path_only_answers_what_it_can_prove(tmp_path, monkeypatch):
    monkeypatch.setenv("STRONGBOX_WAL_SPOOL_DIR", str(tmp_path / "spool"))
    root = wal_spool.spool_root()
    wal = tmp_path / NAMES[0]
    wal.write_bytes(b"segment")
    args = ["--database", "db1", str(wal), NAMES[0]]

    assert wal_spool.archived_ahead(args) is False  # no marker
    wal_spool.mark_archived(root, "db1", NAMES[0], "0" * 64)
    assert wal_spool.archived_ahead(args) is False  # another checksum
    wal_spool.mark_archived(root, "db1", NAMES[0], wal_spool.file_sha256(wal))
    assert wal_spool.archived_ahead(["-v", "2", *args]) is False  # options: full command
    assert wal_spool.archived_ahead(["--database=db2", str(wal), NAMES[0]]) is False
    assert wal_spool.archived_ahead(["--database=../db1", str(wal), NAMES[0]]) is False
    assert wal_spool.parse_archive_args(["--ahead", "4", *args]) == ("db1", str(wal), NAMES[0])
    assert wal_spool.archived_ahead(args) is True
    assert wal_spool.archived_ahead(args) is False  # consumed
    assert wal_spool.parse_archive_args(["--database"]) is None

    wal_spool.mark_archived(root, "db1", NAMES[1], "0" * 64)
    old = time.time() - wal_spool.STALE_MARKER_SECONDS - 60
    os.utime(root / "db1" / NAMES[1], (old, old))
    wal_spool.mark_archived(root, "db1", NAMES[2], "0" * 64)
    assert wal_spool.forget_stale_markers(root, "db1") == 1
    assert [p.name for p in (root / "db1").iterdir()] == [NAMES[2]]


def test_the_spool_defaults_to_the_var_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("STRONGBOX_WAL_SPOOL_DIR", raising=False)
    monkeypatch.setenv("STRONGBOX_VAR_DIR", str(tmp_path))
    assert wal_spool.spool_root() == tmp_path / "wal-spool"


def fetch_command(workdir: Path, database, name: str, *, prefetch: Path, env=None):
    """Run fetch_wal as a recovering server does: %f, then %p relative to its directory."""
    manage = Path(settings.BASE_DIR) / "manage.py"
    return subprocess.run(  # noqa: S603
        [sys.executable, str(manage), "fetch_wal", "--database", str(database.id)]
        + [name, "pg_wal/RECOVERYXLOG"],
        cwd=workdir,
        capture_output=True,
        env={
            **os.environ,
            **child_env(),
            wal_spool.PREFETCH_ENV: str(prefetch),
            **(env or {}),
        },
        timeout=60,
        check=False,
    )


@pytest.mark.django_db(transaction=True)
def test_recovery_fetches_the_next_segments_ahead_and_takes_them_without_django(
    pg_database, datadir, tmp_path
):
    for name in NAMES:
        assert archive_command(datadir, pg_database, name, "--ahead", "0").returncode == 0
    recovering = tmp_path / "recovering"
    (recovering / "pg_wal").mkdir(parents=True)
    prefetch = tmp_path / "prefetch"

    first = fetch_command(recovering, pg_database, NAMES[0], prefetch=prefetch)
    assert first.returncode == 0, first.stderr.decode()
    restored = recovering / "pg_wal" / "RECOVERYXLOG"
    assert restored.read_bytes() == (datadir / "pg_wal" / NAMES[0]).read_bytes()
    assert sorted(p.name for p in prefetch.iterdir()) == NAMES[1:]

    no_django = {"DJANGO_SETTINGS_MODULE": "no.such.settings"}
    for name in NAMES[1:]:
        fast = fetch_command(recovering, pg_database, name, prefetch=prefetch, env=no_django)
        assert fast.returncode == 0, fast.stderr.decode()
        assert restored.read_bytes() == (datadir / "pg_wal" / name).read_bytes()
    assert list(prefetch.iterdir()) == []

    # The end of the archive: not prefetched, so the full command answers "not archived".
    end = fetch_command(recovering, pg_database, "0000000100000000000000FF", prefetch=prefetch)
    assert end.returncode == 1


def test_the_prefetch_fast_path_needs_its_directory_and_the_file(tmp_path, monkeypatch):
    target = tmp_path / "RECOVERYXLOG"
    args = ["--database", "db1", NAMES[0], str(target)]
    monkeypatch.delenv(wal_spool.PREFETCH_ENV, raising=False)
    assert wal_spool.fetched_ahead(args) is False
    monkeypatch.setenv(wal_spool.PREFETCH_ENV, str(tmp_path / "prefetch"))
    assert wal_spool.fetched_ahead(args) is False
    (tmp_path / "prefetch").mkdir()
    (tmp_path / "prefetch" / NAMES[0]).write_bytes(b"verified segment")
    assert wal_spool.fetched_ahead(["--database", "db1", "../x", str(target)]) is False
    assert wal_spool.fetched_ahead(args) is True
    assert target.read_bytes() == b"verified segment"
    assert not (tmp_path / "prefetch" / NAMES[0]).exists()
