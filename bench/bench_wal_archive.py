"""Benchmark: WAL archiving of a real PostgreSQL 15 cluster, Strongbox against pgBackRest.

Run: .venv/bin/python bench/bench_wal_archive.py [--segments 32] [--runs 5]
Needs the PostgreSQL 15 server binaries (/usr/lib/postgresql/15/bin) and pgBackRest
(Debian: ``apt-get install pgbackrest``, or ``STRONGBOX_WITH_PGBACKREST=1 ./scripts/setup``);
the script says so and stops when one is missing.

It initdb's a throwaway cluster on a free port and, for each measurement, lets it build a
backlog: ``archive_command`` empty (PostgreSQL keeps every finished segment, marked ready),
INSERTs until ``--segments`` segments of real WAL are written, ``pg_switch_wal()``. Then it
sets the archive_command of one archiver and reloads; the clock runs until PostgreSQL's own
archiver reports the last segment archived (``pg_stat_archiver``). So every figure is
PostgreSQL calling the command once per file, one at a time, as in production:

- ``strongbox-sync``: today's ``manage.py archive_wal`` (a Django start per full call, each
  storing up to STRONGBOX_WAL_ARCHIVE_AHEAD files; the others answered from markers);
- ``strongbox-async``: ``python -S manage.py archive_wal --async`` and its resident pusher
  (STRONGBOX_WAL_ASYNC_PROCESSES=2), already running, as on a server whose WAL keeps flowing
  (it stays STRONGBOX_WAL_ASYNC_IDLE_SECONDS, 60, after its last file). It looks at pg_wal
  only when a command wakes it, so it does not touch the backlog before the clock starts;
- ``strongbox-async-cold``: the same with no pusher running: the first command starts it
  (one Django start-up, timed) and the bench stops it afterwards;
- ``pgbackrest-sync``: ``pgbackrest archive-push``;
- ``pgbackrest-async``: the same with ``--archive-async --process-max=2``.

Both compress with zstd at the same level (STRONGBOX_COMPRESSION_LEVEL, 3) into a local
directory, neither encrypts (the bench organisation has no key). The five run interleaved
(the order rotates each round), ``--runs`` rounds; it prints medians, the load average before
and after, and the ratios. Each run's segments must all be stored: Strongbox's recorded (and
fetched back, checksum-verified, for one per run), pgBackRest's present in its repository.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG_BIN = Path(os.environ.get("STRONGBOX_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SEGMENT = 16 << 20
MODES = (
    "strongbox-sync",
    "strongbox-async",
    "strongbox-async-cold",
    "pgbackrest-sync",
    "pgbackrest-async",
)


def setup(var: Path) -> None:
    os.environ.update(
        STRONGBOX_VAR_DIR=str(var),
        STRONGBOX_TENANT_ROOT=str(var / "tenants"),
        DJANGO_SETTINGS_MODULE="config.settings.local",
        STRONGBOX_LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # As under pitr_setup's wrapper: the commands write no byte code, and the fast path's
    # modules were compiled when the wrapper was written.
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    from pitr.setup import compile_fast_path

    compile_fast_path()


def archive_dir(var: Path) -> Path:
    """The bench organisation's local destination, inside its directory of the tenant root."""
    return var / "tenants" / "bench" / "archive"


def make_database(var: Path, label: str, **fields):
    """A PostgreSQL database row ``label`` whose WAL goes to ``archive_dir(var)``."""
    from destinations.models import Destination
    from organizations.models import Database, Environment, Organisation, Project

    organisation, _ = Organisation.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    project, _ = Project.objects.get_or_create(
        organisation=organisation, slug="bench", defaults={"name": "Bench"}
    )
    environment, _ = Environment.objects.get_or_create(
        project=project, slug="bench", defaults={"name": "Bench"}
    )
    Destination.objects.get_or_create(
        organisation=organisation,
        name="Archive disk",
        defaults={"kind": "local", "config": {"path": str(archive_dir(var))}, "is_default": True},
    )
    return Database.objects.create(
        environment=environment,
        name=label,
        slug=label,
        engine="postgresql",
        host="127.0.0.1",
        **fields,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    def __init__(self, root: Path, port: int, launcher: tuple[str, ...]):
        self.root, self.port, self.launcher = root, port, launcher
        self.datadir = root / "data"

    def run(self, *argv: str) -> None:
        subprocess.run([*self.launcher, *argv], check=True, capture_output=True, timeout=300)  # noqa: S603

    def init(self, archive_command: str, extra: str = "") -> None:
        self.root.mkdir(parents=True)
        self.run(str(PG_BIN / "initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust")
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nwal_level = replica\n"
                "archive_mode = on\nmax_wal_senders = 4\nmax_wal_size = '4GB'\n"
                f"archive_command = '{archive_command.replace(chr(39), chr(39) * 2)}'\n{extra}"
            )

    def start(self) -> None:
        self.run(str(PG_BIN / "pg_ctl"), "start", "-D", str(self.datadir), "-w", "-l",
                 str(self.root / "server.log"))  # fmt: skip

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            subprocess.run(  # noqa: S603
                [*self.launcher, str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.datadir),
                 "-m", "immediate"], capture_output=True, check=False, timeout=120,
            )  # fmt: skip

    def sql(self, query: str, dbname: str = "postgres", params: tuple | None = None):
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True
        ) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else None


def require_tools() -> None:
    missing = [str(PG_BIN / t) for t in ("initdb", "pg_ctl") if not (PG_BIN / t).exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: apt-get install postgresql-15")
    if shutil.which("pgbackrest") is None:
        raise SystemExit(
            "pgbackrest is not installed (the peer of this bench): apt-get install pgbackrest, "
            "or STRONGBOX_WITH_PGBACKREST=1 ./scripts/setup"
        )


def pgbackrest_config(var: Path, cluster: Cluster, level: int) -> Path:
    path = var / "pgbackrest.conf"
    path.write_text(
        "[global]\n"
        f"repo1-path={var / 'pgbackrest-repo'}\n"
        f"spool-path={var / 'pgbackrest-spool'}\n"
        f"lock-path={var / 'pgbackrest-lock'}\n"
        f"log-path={var / 'pgbackrest-log'}\n"
        "log-level-console=warn\nlog-level-file=off\n"
        f"compress-type=zst\ncompress-level={level}\n"
        "[bench]\n"
        f"pg1-path={cluster.datadir}\npg1-port={cluster.port}\n"
        f"pg1-socket-path={cluster.root}\npg1-user=postgres\n"
    )
    return path


def commands(var: Path, databases: dict, config: Path) -> dict[str, str]:
    manage = ROOT / "manage.py"
    python = sys.executable
    pgbackrest = f"pgbackrest --config={config} --stanza=bench"
    asynchronous = f"{python} -S {manage} archive_wal --async --database"
    return {
        "strongbox-sync": f"{python} {manage} archive_wal --database {databases['sync']} %p %f",
        "strongbox-async": f"{asynchronous} {databases['async']} %p %f",
        "strongbox-async-cold": f"{asynchronous} {databases['cold']} %p %f",
        "pgbackrest-sync": f"{pgbackrest} archive-push %p",
        "pgbackrest-async": f"{pgbackrest} --archive-async --process-max=2 archive-push %p",
    }


def set_archive_command(cluster: Cluster, command: str) -> None:
    cluster.sql(f"ALTER SYSTEM SET archive_command = '{command.replace(chr(39), chr(39) * 2)}'")
    cluster.sql("SELECT pg_reload_conf()")


def build_backlog(cluster: Cluster, count: int) -> list[str]:
    """Write ``count`` segments of WAL (nothing archived meanwhile); their names."""
    set_archive_command(cluster, "")
    cluster.sql("CHECKPOINT")  # recycle what earlier runs archived; not timed
    start = cluster.sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0]
    first = cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    while cluster.sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")[0][0] - start < (
        count * SEGMENT
    ):
        cluster.sql(
            "INSERT INTO orders (customer, note) "
            "SELECT g % 1000, md5(g::text) || repeat(' note', g % 8) "
            "FROM generate_series(1, 40000) g"
        )
    last = cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    cluster.sql("SELECT pg_switch_wal()")
    status = cluster.datadir / "pg_wal" / "archive_status"
    names = sorted(p.name.removesuffix(".ready") for p in status.glob("*.ready"))
    assert names[0] <= first and names[-1] == last, (names[:1], first, names[-1:], last)
    return names


def drain(cluster: Cluster, command: str, last: str, timeout: float = 600) -> float:
    """Seconds from setting ``command`` until PostgreSQL reports ``last`` archived (one
    connection polls every 10 ms: a connection per poll would load the machine itself)."""
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=cluster.port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        quoted = command.replace("'", "''")
        started = time.perf_counter()
        conn.execute(f"ALTER SYSTEM SET archive_command = '{quoted}'")
        conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while True:
            archived, failed = conn.execute(
                "SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver"
            ).fetchone()
            if archived == last:
                return time.perf_counter() - started
            if time.monotonic() > deadline:
                log = (cluster.root / "server.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"{last} not archived within {timeout} s (failed {failed}): {log}")
            time.sleep(0.01)


def check_stored(var: Path, mode: str, database, names: list[str]) -> None:
    if mode.startswith("strongbox"):
        from backups.models import WalSegment
        from pitr.archive import wal_fetch

        recorded = set(
            WalSegment.objects.filter(database=database, name__in=names).values_list(
                "name", flat=True
            )
        )
        assert recorded == set(names), f"{mode}: {len(set(names) - recorded)} not recorded"
        probe = var / "fetched"
        assert wal_fetch(database=database, name=names[len(names) // 2], target=probe)
        probe.unlink()
    else:
        stored = {p.name[:24] for p in (var / "pgbackrest-repo" / "archive").rglob("*.zst")}
        assert set(names) <= stored, f"{mode}: {len(set(names) - stored)} not in the repository"


def stop_pusher(database_id) -> None:
    """The pusher this bench's async archive_command started (its pid in the spool)."""
    if database_id is None:
        return
    from pitr import wal_async

    pid_file = Path(wal_async.database_spool(str(database_id))) / "pusher.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            os.kill(pid, 0)  # ProcessLookupError once it is gone
            time.sleep(0.01)
    pid_file.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    require_tools()
    var = Path(tempfile.mkdtemp(prefix="strongbox-bench-wal-"))
    cluster = None
    databases: dict = {}
    try:
        os.environ["STRONGBOX_WAL_ASYNC_IDLE_SECONDS"] = "3600"  # stopped by the bench itself
        setup(var)
        from django.conf import settings

        from pitr.restore import server_launcher

        databases = {
            "sync": make_database(var, "sync").id,
            "async": make_database(var, "async").id,
            "cold": make_database(var, "cold").id,
        }
        from organizations.models import Database

        cluster = Cluster(var / "cluster", free_port(), server_launcher())
        cluster.init("", extra="checkpoint_timeout = '30min'\nfsync = off\n")
        cluster.start()
        cluster.sql(
            "CREATE TABLE orders (id bigserial PRIMARY KEY, customer int, note text, "
            "at timestamptz DEFAULT now())"
        )
        config = pgbackrest_config(var, cluster, settings.STRONGBOX_COMPRESSION_LEVEL)
        cluster.run("pgbackrest", f"--config={config}", "--stanza=bench", "stanza-create")
        lines = commands(var, databases, config)
        by_mode = {
            "strongbox-sync": Database.objects.get(pk=databases["sync"]),
            "strongbox-async": Database.objects.get(pk=databases["async"]),
            "strongbox-async-cold": Database.objects.get(pk=databases["cold"]),
        }
        load_before = os.getloadavg()
        print(
            f"load average {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}; "
            f"{os.cpu_count()} CPUs; {args.segments} segments of real WAL per run, "
            f"{args.runs} interleaved rounds"
        )
        for mode in MODES:  # warm-up, not timed: the pusher starts, caches fill
            names = build_backlog(cluster, 2)
            drain(cluster, lines[mode], names[-1])
            stop_pusher(databases["cold"])
        timings: dict[str, list[float]] = {mode: [] for mode in MODES}
        for round_number in range(args.runs):
            shift = round_number % len(MODES)
            order = MODES[shift:] + MODES[:shift]
            for mode in order:
                names = build_backlog(cluster, args.segments)
                seconds = drain(cluster, lines[mode], names[-1])
                stop_pusher(databases["cold"])
                check_stored(var, mode, by_mode.get(mode), names)
                rate = len(names) / seconds
                timings[mode].append(rate)
                print(
                    f"  round {round_number + 1} {mode}: {len(names)} segments in {seconds:.2f} s,"
                    f" {rate:.1f} segments/s (load {os.getloadavg()[0]:.1f})"
                )
        medians = {mode: statistics.median(rates) for mode, rates in timings.items()}
        load_after = os.getloadavg()
        print(f"load average after {load_after[0]:.1f} {load_after[1]:.1f} {load_after[2]:.1f}")
        for mode in MODES:
            rates = timings[mode]
            print(
                f"{mode}: median {medians[mode]:.1f} segments/s "
                f"({medians[mode] * SEGMENT / 1e6:.0f} MB/s of WAL; "
                f"min {min(rates):.1f}, max {max(rates):.1f})"
            )
        for mine, peer in (
            ("strongbox-async", "pgbackrest-async"),
            ("strongbox-async-cold", "pgbackrest-async"),
            ("strongbox-async", "pgbackrest-sync"),
            ("strongbox-async", "strongbox-sync"),
            ("strongbox-sync", "pgbackrest-sync"),
        ):
            print(f"ratio {mine} / {peer}: {medians[mine] / medians[peer]:.2f}x")
    finally:
        if cluster is not None:
            cluster.stop()
        stop_pusher(databases.get("async"))
        stop_pusher(databases.get("cold"))
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
