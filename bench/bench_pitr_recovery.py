"""Benchmark: a point-in-time recovery of a real PostgreSQL cluster, WAL fetched one file per
restore_command call against WAL prefetched ahead, in the same run.

Run: .venv/bin/python bench/bench_pitr_recovery.py [--rows 3000000]

It creates a throwaway cluster (initdb into a temporary directory, a free port,
``archive_command`` running the real ``manage.py archive_wal``) under the embedded profile
(a scratch SQLite app database and a local destination), takes a pg_basebackup base backup
through Strongbox, writes ``--rows`` rows (about 1 GB of WAL per 6 million), notes the time
T, and archives everything. Then it recovers the cluster to T twice with
``pitr.restore.recovered_copy`` (what a point-in-time restore does):

- (a) ``STRONGBOX_WAL_FETCH_AHEAD=0``: every WAL file costs a full ``fetch_wal`` run;
- (b) the default: ``fetch_wal`` downloads the next 16 segments, whose own restore_command
  calls move a verified file into place without starting Django.

Prints the WAL replayed, the seconds and MB/s of each recovery, the ratio (a)/(b), and
checks that both copies hold exactly the rows committed before T. Everything it started is
stopped and its directory removed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench_wal_archive import Cluster, free_port, setup  # noqa: E402
from bench_wal_archive import make_database as make_wal_database  # noqa: E402


def make_database(var: Path, port: int):
    from schedules.models import Schedule

    database = make_wal_database(
        var, "bench", port=port, username="postgres", database_name="bench"
    )
    Schedule.objects.create(
        environment=database.environment, wal_enabled=True, wal_retention_days=7
    )
    return database


def wait_archived(database, name: str, timeout: float = 900) -> None:
    from backups.models import WalSegment

    deadline = time.monotonic() + timeout
    while not WalSegment.objects.filter(database=database, name=name).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} was not archived within {timeout:.0f} s")
        time.sleep(0.5)


def recover(database, target, workdir: Path, ahead: int) -> tuple[float, float, int]:
    """(seconds to recover, seconds of replay by the server log, rows found)."""
    from backups.engines.postgresql import PostgreSQLEngine
    from backups.services import connection_spec_for
    from pitr.restore import recovered_copy

    os.environ["STRONGBOX_WAL_FETCH_AHEAD"] = str(ahead)
    started = time.perf_counter()
    with recovered_copy(
        database=database,
        target=target,
        workdir=workdir,
        spec=connection_spec_for(database),
        timeout=3600,
    ) as copy:
        seconds = time.perf_counter() - started
        with PostgreSQLEngine().connect(copy.spec) as conn:
            rows = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    return seconds, copy.result.seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="strongbox-bench-pitr-"))
    cluster = None
    try:
        setup(var)
        from backups.models import WalSegment
        from backups.services import backup_claim
        from pitr.base import base_backup_execute, base_backup_request
        from pitr.restore import server_launcher

        port = free_port()
        database = make_database(var, port)
        manage = [sys.executable, str(ROOT / "manage.py"), "archive_wal"]
        archive = shlex.join([*manage, "--database", str(database.id)]) + " %p %f"
        cluster = Cluster(var / "primary", port, server_launcher())
        cluster.init(archive)
        cluster.start()
        cluster.sql("CREATE DATABASE bench")
        cluster.sql("CREATE TABLE orders (id bigint PRIMARY KEY, label text)", "bench")
        base = base_backup_execute(
            backup=backup_claim(backup_id=base_backup_request(database=database, enqueue=False).id)
        )
        assert base.status == "completed", base.message

        written = time.perf_counter()
        batch = 500_000
        for first in range(1, args.rows + 1, batch):
            last = min(first + batch - 1, args.rows)
            cluster.sql(
                "INSERT INTO orders SELECT g, md5(g::text)"
                " FROM generate_series(%s::bigint, %s::bigint) g",
                "bench",
                (first, last),
            )
        target = cluster.sql("SELECT clock_timestamp()")[0][0]
        time.sleep(1.1)
        cluster.sql("INSERT INTO orders VALUES (-1, 'after the target')", "bench")
        last_wal = cluster.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        wait_archived(database, last_wal)
        segments = WalSegment.objects.filter(database=database, kind="segment").count()
        wal_mb = segments * 16 * 1024 * 1024 / 1e6
        print(
            f"load average {os.getloadavg()[0]:.1f}; {args.rows:,} rows written and "
            f"{segments} WAL segments ({wal_mb:.0f} MB) archived in "
            f"{time.perf_counter() - written:.1f} s"
        )
        cluster.stop()

        timings = {}
        for label, ahead in (("a-fetch-one-per-call", 0), ("b-prefetch-16", 16)):
            seconds, replay, rows = recover(database, target, var / f"copy-{label}", ahead)
            assert rows == args.rows, f"{label}: {rows} rows, expected {args.rows}"
            timings[label] = seconds
            print(
                f"{label}: recovered to T in {seconds:.1f} s ({wal_mb / seconds:.1f} MB/s of "
                f"WAL), {rows:,} rows as at T"
            )
        ratio = timings["a-fetch-one-per-call"] / timings["b-prefetch-16"]
        print(f"recovery ratio (a)/(b): {ratio:.2f}x faster with prefetching")
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
