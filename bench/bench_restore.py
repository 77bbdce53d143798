"""Benchmark a Strongbox restore of a ~500 MB PostgreSQL database against the native tools.

    .venv/bin/python bench/bench_restore.py [--size-mb 500] [--dir /tmp/strongbox-bench] [--keep]

Strongbox side: a real backup (pg_dump -> zstd -> AES-GCM -> local destination) made through
the services, then ``restore_execute`` into the same database with the safety backup turned
off (a safety backup is a backup, not part of the restore's cost): checksum verification,
decrypt + decompress, pg_restore into a scratch database, row-count check, swap, drop of the
old database.

Native side, in the same run, from a zstd file of the same dump (``pg_dump -Fc -Z0 | zstd``):

- ``zstd -dc file | pg_restore`` with one job into an empty database;
- ``zstd -d`` to a file, then ``pg_restore -j2`` (``-j`` cannot read a pipe).

The ratio is Strongbox's median wall time over the faster native one's (target <= 1.15),
over ``--rounds`` interleaved rounds (every variant once per round, in turn, so the shared
machine's load falls on all alike); every variant is timed up to a CHECKPOINT, so each pays
for flushing its own writes. Memory: the peak RSS of the processes a variant runs, sampled
every 20 ms: the tools (zstd, pg_restore and its jobs) and, for Strongbox, this Python
process as well (Django and all), with how much it grew over its own size before.
The load average is printed with every round.
Servers come from STRONGBOX_TEST_PG_* as in the tests. A throwaway Django database and
artifact directory live under --dir.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SOURCE = "sbx_bench_restore_src"
NATIVE = "sbx_bench_restore_native"
ROW_BYTES = 165  # about, on disk, for the rows below
PEAKS: dict[str, list[tuple[int, int, int]]] = {}


def _pg_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PGHOST", os.environ.get("STRONGBOX_TEST_PG_HOST", "127.0.0.1"))
    env.setdefault("PGPORT", os.environ.get("STRONGBOX_TEST_PG_PORT", "5432"))
    env.setdefault("PGUSER", os.environ.get("STRONGBOX_TEST_PG_USER", "postgres"))
    if os.environ.get("STRONGBOX_TEST_PG_PASSWORD"):
        env["PGPASSWORD"] = os.environ["STRONGBOX_TEST_PG_PASSWORD"]
    return env


def psql(statement: str, dbname: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", dbname, "-c", statement],
        env=_pg_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def database_size(name: str) -> int:
    value = psql(f"SELECT pg_database_size('{name}')")
    return int(value) if value else 0


def create_source(size_mb: int, source: str = SOURCE, *, at_most: float | None = None) -> None:
    """Two tables (so -j2 has parallel work) with a primary key and a secondary index each;
    an existing ``source`` of at least 0.9 × ``size_mb`` (and, with ``at_most``, at most that
    many times it) is reused."""
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{source}'")  # noqa: S608
    size = database_size(source) if exists else 0
    if size > size_mb * 0.9 * 2**20 and (at_most is None or size < at_most * size_mb * 2**20):
        print(f"reusing {source} ({size / 2**20:.0f} MB)")
        return
    psql(f"DROP DATABASE IF EXISTS {source}")
    psql(f"CREATE DATABASE {source}")
    rows = size_mb * 2**20 // ROW_BYTES // 2
    started = time.perf_counter()
    for table in ("events", "ledger"):
        psql(
            f"CREATE TABLE {table} (id bigint PRIMARY KEY, account integer, kind text,"
            " payload text, amount numeric(12, 2), created_at timestamptz)",
            source,
        )
        fill = (
            " SELECT i, i % 10000, (ARRAY['open', 'close', 'pay', 'refund'])[1 + i % 4],"  # noqa: S608
            " md5(i::text) || ' ' || md5((i * 7)::text) || ' ' || repeat(chr(97 + i % 26), 12),"
            " (i % 100000) / 100.0, timestamptz '2026-01-01' + i * interval '1 second'"
            f" FROM generate_series(1, {rows}) i"
        )
        psql(f"INSERT INTO {table}" + fill, source)
        psql(f"CREATE INDEX ON {table} (account)", source)
    psql("VACUUM ANALYZE", source)
    took = time.perf_counter() - started
    print(f"created {source}: {database_size(source) / 2**20:.0f} MB in {took:.0f}s")


def _rss_by_pid() -> dict[int, tuple[int, int]]:
    """(parent pid, RSS bytes) of every process, from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
        found[int(entry)] = (int(fields["PPid"]), rss)
    return found


class PeakRss:
    """Samples the RSS of this process and of its descendants until stopped."""

    def __init__(self) -> None:
        self.own = self.children = self.tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.02):
            table = _rss_by_pid()
            kids: dict[int, list[int]] = {}
            for pid, (parent, _) in table.items():
                kids.setdefault(parent, []).append(pid)
            children, todo = 0, list(kids.get(me, []))
            while todo:
                pid = todo.pop()
                children += table[pid][1]
                todo.extend(kids.get(pid, []))
            own = table[me][1]
            self.own = max(self.own, own)
            self.children = max(self.children, children)
            self.tree = max(self.tree, own + children)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def own_rss() -> int:
    return _rss_by_pid()[os.getpid()][1]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def timed(label: str, func) -> float:
    """Wall time of func() up to a durable result: a CHECKPOINT ends every variant.

    Strongbox's swap drops the old database, which makes PostgreSQL checkpoint (flushing
    the restored data); without a CHECKPOINT of their own the native runs would leave
    their dirty buffers to be flushed during whichever variant runs next.
    """
    psql("CHECKPOINT")
    before = own_rss()
    with PeakRss() as rss:
        started = time.perf_counter()
        func()
        psql("CHECKPOINT")
        wall = time.perf_counter() - started
    PEAKS.setdefault(label, []).append((rss.children, rss.own - before, rss.tree))
    print(
        f"  {label:<44} {wall:7.2f}s  peak RSS: tools {rss.children / 2**20:4.0f} MB, this "
        f"process +{max(0, rss.own - before) / 2**20:3.0f} MB (total {rss.tree / 2**20:4.0f} MB)"
    )
    return wall


def native_stream(dump_zst: Path) -> None:
    psql(f"DROP DATABASE IF EXISTS {NATIVE}")
    psql(f"CREATE DATABASE {NATIVE}")
    zstd = subprocess.Popen(["zstd", "-dc", "-q", str(dump_zst)], stdout=subprocess.PIPE)
    restore = subprocess.run(
        ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "-d", NATIVE],
        stdin=zstd.stdout,
        env=_pg_env(),
        check=False,
    )
    assert zstd.stdout is not None
    zstd.stdout.close()
    if zstd.wait() != 0 or restore.returncode != 0:
        raise SystemExit("native streaming restore failed")


def native_jobs(dump_zst: Path, workdir: Path) -> None:
    psql(f"DROP DATABASE IF EXISTS {NATIVE}")
    psql(f"CREATE DATABASE {NATIVE}")
    plain = workdir / "native.pgdump"
    subprocess.run(["zstd", "-d", "-q", "-f", str(dump_zst), "-o", str(plain)], check=True)
    try:
        subprocess.run(
            ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "-j2"]
            + ["-d", NATIVE, str(plain)],
            env=_pg_env(),
            check=True,
        )
    finally:
        plain.unlink(missing_ok=True)


def setup_django(workdir: Path) -> None:
    os.environ["STRONGBOX_VAR_DIR"] = str(workdir / "var")
    os.environ["STRONGBOX_SQLITE_PATH"] = str(workdir / "strongbox.sqlite3")
    os.environ["STRONGBOX_LOCAL_DESTINATION_ROOT"] = str(workdir / "artifacts")
    os.environ["STRONGBOX_TMP_DIR"] = str(workdir / "tmp")
    os.environ.setdefault("STRONGBOX_MASTER_KEY", "bench-master-key")
    os.environ.setdefault("STRONGBOX_LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def strongbox_backup(source: str = SOURCE):
    from backups.services import backup_claim, backup_execute, backup_request
    from destinations.models import Destination
    from organizations.models import Database, Environment, Organisation, Project

    env = _pg_env()
    org, _ = Organisation.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    project, _ = Project.objects.get_or_create(organisation=org, slug="bench", name="Bench")
    environment, _ = Environment.objects.get_or_create(project=project, slug="bench", name="Bench")
    Destination.objects.get_or_create(
        organisation=org, name="Local", defaults={"kind": "local", "is_default": True}
    )
    database, _ = Database.objects.get_or_create(
        environment=environment,
        slug="main",
        defaults={
            "name": "main",
            "engine": "postgresql",
            "host": env["PGHOST"],
            "port": int(env["PGPORT"]),
            "username": env["PGUSER"],
            "password": env.get("PGPASSWORD", ""),
            "database_name": source,
        },
    )
    (backup,) = backup_request(environment=environment, kind="database", database=database)
    backup = backup_execute(backup=backup_claim(backup_id=backup.id))
    if backup.status != "completed":
        raise SystemExit(f"backup failed: {backup.message}")
    return backup


def strongbox_restore(backup, *, post_data_jobs: int | None = None) -> None:
    from restores import loading

    default_jobs = loading.POST_DATA_JOBS
    if post_data_jobs is not None:
        loading.POST_DATA_JOBS = post_data_jobs
    try:
        _strongbox_restore(backup)
    finally:
        loading.POST_DATA_JOBS = default_jobs


def _strongbox_restore(backup) -> None:
    from restores.services import restore_claim, restore_execute, restore_request

    restore = restore_request(
        backup=backup, target_type="same", take_safety_backup=False, enqueue=False
    )
    done = restore_execute(restore=restore_claim(restore_id=restore.id))
    if done.status != "completed":
        raise SystemExit(f"restore failed: {done.message}")
    phases = ", ".join(f"{p['name']} {p.get('duration_sec', 0):.1f}s" for p in done.phases)
    print(f"    phases: {phases}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the source database")
    args = parser.parse_args()
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="strongbox-bench-restore-"))
    workdir.mkdir(parents=True, exist_ok=True)

    create_source(args.size_mb)
    setup_django(workdir)
    started = time.perf_counter()
    backup = strongbox_backup()
    print(
        f"strongbox backup: {backup.size / 2**20:.0f} MB artifact (zstd + AES-GCM) in "
        f"{time.perf_counter() - started:.1f}s"
    )
    dump_zst = workdir / "native.pgdump.zst"
    with dump_zst.open("wb") as out:
        dump = subprocess.Popen(
            ["pg_dump", "-Fc", "-Z0", "-d", SOURCE], stdout=subprocess.PIPE, env=_pg_env()
        )
        subprocess.run(["zstd", "-3", "-T2", "-q", "-c"], stdin=dump.stdout, stdout=out, check=True)
        assert dump.stdout is not None
        dump.stdout.close()
        dump.wait()
    print(f"native dump: {dump_zst.stat().st_size / 2**20:.0f} MB zstd file")
    # Warm the page cache for every reader alike.
    subprocess.run(["cat", str(dump_zst)], stdout=subprocess.DEVNULL, check=True)

    variants = {
        "native: zstd -dc | pg_restore (1 job)": lambda: native_stream(dump_zst),
        "native: zstd -d file; pg_restore -j2": lambda: native_jobs(dump_zst, workdir),
        # The data streamed (a decrypted dump is never written to a file for -j), the
        # post-data section (indexes, constraints) by parallel jobs from the table of contents.
        "strongbox (streamed)": lambda: strongbox_restore(backup),
        # The same with the whole dump in one streamed pg_restore (POST_DATA_JOBS = 1).
        "strongbox (one streamed pg_restore)": lambda: strongbox_restore(backup, post_data_jobs=1),
    }
    results: dict[str, list[float]] = {label: [] for label in variants}
    for round_number in range(1, args.rounds + 1):
        print(f"round {round_number} (load {load_average()}): restore wall times")
        for label, run in variants.items():
            results[label].append(timed(label, run))
    median = {label: statistics.median(times) for label, times in results.items()}
    native = min(v for k, v in median.items() if k.startswith("native"))
    print(f"medians of {args.rounds} interleaved rounds (load at the end {load_average()}):")
    for label, wall in median.items():
        tools = max(peak[0] for peak in PEAKS[label]) / 2**20
        grew = max(peak[1] for peak in PEAKS[label]) / 2**20
        print(
            f"  {label:<44} {wall:7.2f}s (min {min(results[label]):6.2f}s)  ratio to fastest "
            f"native {wall / native:.2f}x  peak RSS tools {tools:.0f} MB, this process "
            f"+{max(0, grew):.0f} MB"
        )
    ours = median["strongbox (streamed)"]
    print(f"ratio strongbox (default) / fastest native: {ours / native:.2f}x (target <= 1.15)")

    psql(f"DROP DATABASE IF EXISTS {NATIVE}")
    if not args.keep:
        psql(f"DROP DATABASE IF EXISTS {SOURCE} WITH (FORCE)")


if __name__ == "__main__":
    main()
