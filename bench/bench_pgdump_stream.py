"""What reading row counts and checksums from pg_dump's stream costs, next to pg_dump itself.

    .venv/bin/python bench/bench_pgdump_stream.py [--size 250] [--rounds 5] [--keep]

In the same run, interleaved, for --rounds rounds (medians printed, with the load average):
  (a) pg_dump -Fc -Z0 of the database to a pipe: its own CPU (user+sys) and wall time
  (b) backups.pgdump_stream.DumpStream over that dump, fed in 64 KiB and in 1 MiB pieces
      (what the pipe hands the reader): CPU of this process
  (c) a plain SHA-256 of the same bytes: the floor any checksum pays
  (d) the old way: count(*) of every table in a second connection (wall; the CPU is the
      server's, competing with pg_dump's backend)
The database is bench_backup.py's (random words, ~2-3x compressible), made if missing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_backup import PG, fill_database  # noqa: E402

from backups.pgdump_stream import DumpStream  # noqa: E402


def dump_once(name: str) -> tuple[bytes, float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    argv = ["pg_dump", "-Fc", "-Z0", "-h", PG["host"], "-p", str(PG["port"]), "-U", PG["user"]]
    data = subprocess.run([*argv, name], check=True, capture_output=True).stdout
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return data, cpu, wall


def cpu_of(work) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def parse(data: bytes, piece: int) -> None:
    stream = DumpStream()
    view = memoryview(data)
    for start in range(0, len(data), piece):
        stream.feed(bytes(view[start : start + piece]))
    stream.finish()
    assert stream.problem is None, stream.problem


def sha256(data: bytes) -> None:
    digest = hashlib.sha256()
    view = memoryview(data)
    for start in range(0, len(data), 1 << 20):
        digest.update(view[start : start + (1 << 20)])


def count_all(name: str) -> float:
    import psycopg

    started = time.monotonic()
    with psycopg.connect(**PG, dbname=name) as conn:
        tables = conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.relkind = 'r'"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for (table,) in tables:
            conn.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - quoted by format()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()
    name = f"sbx_bench_{args.size}mb"
    fill_database(name, args.size)
    loads = [os.getloadavg()[0]]
    runs: dict[str, list[float]] = {}
    size = 0
    try:
        for _ in range(args.rounds):
            data, cpu, wall = dump_once(name)
            size = len(data)
            runs.setdefault("(a) pg_dump cpu", []).append(cpu)
            runs.setdefault("(a) pg_dump wall", []).append(wall)
            runs.setdefault("(b) stream, 64 KiB pieces", []).append(
                cpu_of(lambda d=data: parse(d, 64 << 10))
            )
            runs.setdefault("(b) stream, 1 MiB pieces", []).append(
                cpu_of(lambda d=data: parse(d, 1 << 20))
            )
            runs.setdefault("(c) sha256 alone", []).append(cpu_of(lambda d=data: sha256(d)))
            runs.setdefault("(d) count(*) wall", []).append(count_all(name))
            loads.append(os.getloadavg()[0])
    finally:
        if not args.keep:
            import psycopg

            with psycopg.connect(**PG, dbname="postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    medians = {label: statistics.median(values) for label, values in runs.items()}
    print(f"dump: {size / 2**20:.0f} MiB; {args.rounds} interleaved rounds; medians")
    print(f"load average (1 min) during the run: {min(loads):.2f} .. {max(loads):.2f}")
    for label, value in medians.items():
        print(f"  {label:30} {value:7.3f} s   (runs: {', '.join(f'{v:.2f}' for v in runs[label])})")
    base = medians["(a) pg_dump cpu"]
    wall = medians["(a) pg_dump wall"]
    for label in ("(b) stream, 64 KiB pieces", "(b) stream, 1 MiB pieces", "(c) sha256 alone"):
        print(
            f"  {label}: {medians[label] / base:.2f}x pg_dump's own CPU, "
            f"{medians[label] / wall:.0%} of one core over the dump's wall time, "
            f"{size / 2**20 / medians[label]:.0f} MiB/s"
        )
    print(f"  (d)/(a) wall: {medians['(d) count(*) wall'] / wall:.2f}")


if __name__ == "__main__":
    main()
