"""Throwaway PostgreSQL clusters for the PITR tests: initdb into a temporary directory,
a free port, ``archive_command`` running the real ``manage.py archive_wal``.

The server refuses to run as root. When the tests run as root, the clusters start inside
a user namespace (``unshare --user --map-user``) where the server is an ordinary user,
while its archive_command still reaches the root-owned test database and artifacts.
Every cluster is stopped (``pg_ctl stop -m immediate``) at teardown.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from backups.models import BackupKind, BackupMethod, BaseBackupPosition, WalSegment
from pitr import physical
from tests import factories
from tests.fixtures.databases import unavailable
from tests.fixtures.s3 import free_port
from tests.fixtures.tenants import DEFAULT_SLUG, unique_tenant_dir
from tests.fixtures.worker import child_database_env, wait_for

PG_BIN = Path(os.environ.get("STRONGBOX_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_TOOLS = ("initdb", "pg_ctl", "postgres", "pg_basebackup", "pg_waldump")


def require_server_binaries() -> None:
    missing = [tool for tool in SERVER_TOOLS if not (PG_BIN / tool).exists()]
    if missing:
        unavailable(f"PostgreSQL server binaries missing in {PG_BIN}: {', '.join(missing)}")


def server_launcher() -> tuple[str, ...]:
    """The product's launcher (none, or a user namespace under root), probed once."""
    from pitr.physical import RecoveryFailed
    from pitr.restore import server_launcher as product_launcher

    try:
        launcher = product_launcher()
    except RecoveryFailed as exc:
        unavailable(str(exc))
    if launcher:
        probe = subprocess.run([*launcher, "true"], capture_output=True, check=False)  # noqa: S603
        if probe.returncode != 0:
            unavailable(f"the server launcher {launcher} does not work here: {probe.stderr!r}")
    return launcher


def child_env() -> dict[str, str]:
    """What the server's archive/restore commands need to see the test database."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        **child_database_env(),
        "STRONGBOX_WAL_SPOOL_DIR": str(settings.STRONGBOX_WAL_SPOOL_DIR),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def archive_command(database_id) -> str:
    manage = Path(settings.BASE_DIR) / "manage.py"
    argv = [sys.executable, str(manage), "archive_wal", "--database", str(database_id)]
    return " ".join(shlex.quote(a) for a in argv) + " %p %f"


class Cluster:
    def __init__(self, root: Path, launcher: tuple[str, ...], port: int | None = None):
        self.root = root
        self.datadir = root / "data"
        self.port = port or free_port()
        self.launcher = launcher
        self.log = root / "server.log"
        self.config_file: Path | None = None

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(  # noqa: S603
            [*self.launcher, str(PG_BIN / "pg_ctl"), *args],
            capture_output=True,
            env={**os.environ, **child_env()},
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"pg_ctl {args[0]} failed: {proc.stderr.decode()}\n{self.log_text()[-3000:]}"
            )
        return proc

    def init(self, *, archive: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        subprocess.run(  # noqa: S603
            [
                *self.launcher,
                str(PG_BIN / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
            capture_output=True,
            check=True,
            timeout=120,
        )
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "wal_level = replica\n"
                "archive_mode = on\n"
                f"archive_command = '{archive.replace(chr(39), chr(39) * 2)}'\n"
                "fsync = off\n"
                "max_wal_senders = 4\n"
            )

    def start(self) -> None:
        options = ["-o", f"-c config_file={self.config_file}"] if self.config_file else []
        self.pg_ctl(
            "start", "-D", str(self.datadir), "-l", str(self.log), "-w", "-t", "60", *options
        )

    def move_configuration_out(self) -> None:
        """Debian's layout: postgresql.conf and pg_hba.conf outside the data directory (so
        base backups do not hold them)."""
        etc = self.root / "etc"
        etc.mkdir()
        for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
            (self.datadir / name).rename(etc / name)
        with open(etc / "postgresql.conf", "a") as conf:
            conf.write(
                f"data_directory = '{self.datadir}'\n"
                f"hba_file = '{etc / 'pg_hba.conf'}'\n"
                f"ident_file = '{etc / 'pg_ident.conf'}'\n"
            )
        self.config_file = etc / "postgresql.conf"

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self.pg_ctl("stop", "-D", str(self.datadir), "-m", "immediate", check=False)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        )

    def execute(self, query: str, *params):
        with self.connect() as conn:
            cursor = conn.execute(query, params or None)
            return cursor.fetchall() if cursor.description else None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def pg_launcher() -> tuple[str, ...]:
    require_server_binaries()
    return server_launcher()


@pytest.fixture
def clusters(tmp_path, pg_launcher):
    """make(name, port=None) -> a not yet initialised Cluster; all stopped at teardown."""
    made: list[Cluster] = []

    def make(name: str, port: int | None = None) -> Cluster:
        cluster = Cluster(tmp_path / name, pg_launcher, port)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


@pytest.fixture
def archive_dir():
    """The local destination's directory, where archived WAL lands: inside the directory of
    the conftest's organisation, as every tenant path must be."""
    return unique_tenant_dir(DEFAULT_SLUG, "archive")


def switch_and_wait(cluster: Cluster, database) -> str:
    """Close the current WAL segment and wait until Strongbox recorded it."""
    name = cluster.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    wait_for(
        lambda: WalSegment.objects.filter(database=database, name=name).exists(),
        timeout=60,
        message=f"{name} to be archived; log: {cluster.log_text()[-2000:]}",
    )
    return name


def recorded_history(environment, *, start, segments=(2, 3, 4), name="Orders"):
    """A PostgreSQL database with WAL archiving on, a base backup ending at ``start`` and the
    given segments recorded after it, segment n's last commit at ``start`` + n hours (rows
    only: no cluster, no files)."""
    database = factories.DatabaseFactory(
        environment=environment, name=name, slug=name.lower(), engine="postgresql"
    )
    factories.ScheduleFactory(environment=environment, wal_enabled=True, wal_retention_days=7)
    base = factories.BackupFactory(
        environment=environment,
        database=database,
        kind=BackupKind.BASE,
        method=BackupMethod.PHYSICAL,
        completed_at=start,
    )
    BaseBackupPosition.objects.create(
        backup=base,
        timeline=1,
        start_lsn="0/2000028",
        start_wal=physical.segment_name(1, segments[0]),
        start_segment_number=segments[0],
        stop_time=start,
    )
    for number in segments:
        WalSegment.objects.create(
            organisation=environment.project.organisation,
            environment=environment,
            database=database,
            base_backup=base,
            name=physical.segment_name(1, number),
            timeline=1,
            segment_number=number,
            size=16 << 20,
            stored_size=1 << 20,
            checksum_sha256="0" * 64,
            artifact_sha256="0" * 64,
            key=f"k/{number}",
            last_xact_at=start + timedelta(hours=number),
        )
    return base
