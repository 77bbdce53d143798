"""Benchmark: WAL fetching (and synchronous archiving) over synthetic segments, as PostgreSQL
drives the commands; bench_wal_archive.py measures archiving on a real cluster.

Run: .venv/bin/python bench/bench_wal_fetch.py [--segments 32]

PostgreSQL runs archive_command once per WAL file, one at a time, and marks the file done
when it exits 0. This script plays that archiver over synthetic 16 MiB segments (half
random, half zeros, so zstd has work to do) with the real ``manage.py archive_wal`` into a
local destination, twice in the same run:

- (a) baseline: ``STRONGBOX_WAL_ARCHIVE_AHEAD=0``, each call stores only its own file and
  pays a full Django start-up;
- (b) default: each full call also stores the next ready files, whose own calls are then
  answered from ``pitr/wal_spool.py`` markers before Django starts.

Then it plays a recovery's restore_command over the same segments, in order: (a) without a
prefetch directory, one full ``fetch_wal`` per segment; (b) as a Strongbox recovery runs
it, with ``STRONGBOX_WAL_PREFETCH_DIR`` set, so each full call downloads the next segments
and the calls for those only move a verified file into place.

Prints seconds per segment, MB/s of WAL and the ratio (a)/(b) of each; every segment must
end up recorded and stored, and come back byte for byte.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench_wal_archive import archive_dir, make_database, setup  # noqa: E402

SEGMENT = 16 << 20
RUNS: dict[str, tuple[str, list[str]]] = {}
SEGMENTS: dict[str, bytes] = {}  # name -> its random half, to check what comes back


def make_pg_wal(datadir: Path, count: int) -> list[str]:
    status = datadir / "pg_wal" / "archive_status"
    status.mkdir(parents=True)
    rng = random.Random(7)
    names = []
    for number in range(1, count + 1):
        name = f"{1:08X}{0:08X}{number:08X}"
        noise = rng.randbytes(SEGMENT // 2)
        SEGMENTS[name] = noise
        (datadir / "pg_wal" / name).write_bytes(noise + bytes(SEGMENT // 2))
        (status / f"{name}.ready").touch()
        names.append(name)
    return names


def play_archiver(datadir: Path, database_id: str, ahead: int) -> tuple[float, int]:
    """Call archive_command for the oldest ready file until none is left, as PostgreSQL
    does; returns (seconds, calls)."""
    status = datadir / "pg_wal" / "archive_status"
    env = {**os.environ, "STRONGBOX_WAL_ARCHIVE_AHEAD": str(ahead)}
    manage = ROOT / "manage.py"
    calls = 0
    started = time.perf_counter()
    while ready := sorted(p.name.removesuffix(".ready") for p in status.glob("*.ready")):
        name = ready[0]
        argv = [sys.executable, str(manage), "archive_wal", "--database", database_id]
        proc = subprocess.run(  # noqa: S603
            [*argv, f"pg_wal/{name}", name], cwd=datadir, env=env, capture_output=True
        )
        calls += 1
        if proc.returncode != 0:
            raise SystemExit(f"archive_wal {name} failed: {proc.stderr.decode()[-2000:]}")
        (status / f"{name}.ready").rename(status / f"{name}.done")
    return time.perf_counter() - started, calls


def play_recovery(var: Path, database_id: str, names: list[str], prefetch: bool) -> float:
    """Call restore_command for each segment in order, as recovery does; returns seconds."""
    workdir = var / "recovering"
    (workdir / "pg_wal").mkdir(parents=True)
    env = dict(os.environ)
    env.pop("STRONGBOX_WAL_PREFETCH_DIR", None)
    if prefetch:
        env["STRONGBOX_WAL_PREFETCH_DIR"] = str(var / "prefetch")
    manage = ROOT / "manage.py"
    started = time.perf_counter()
    for name in names:
        argv = [sys.executable, str(manage), "fetch_wal", "--database", database_id]
        proc = subprocess.run(  # noqa: S603
            [*argv, name, "pg_wal/RECOVERYXLOG"], cwd=workdir, env=env, capture_output=True
        )
        if proc.returncode != 0:
            raise SystemExit(f"fetch_wal {name} failed: {proc.stderr.decode()[-2000:]}")
        # What recovery would replay: check it is the segment that was archived.
        restored = (workdir / "pg_wal" / "RECOVERYXLOG").read_bytes()
        rng_check = restored[: SEGMENT // 2]
        assert len(restored) == SEGMENT and rng_check == SEGMENTS[name], name
    seconds = time.perf_counter() - started
    shutil.rmtree(workdir)
    shutil.rmtree(var / "prefetch", ignore_errors=True)
    return seconds


def run(var: Path, label: str, ahead: int, count: int) -> float:
    from backups.models import WalSegment

    database = make_database(var, label)
    datadir = var / f"data-{label}"
    names = make_pg_wal(datadir, count)
    seconds, calls = play_archiver(datadir, str(database.id), ahead)
    stored = WalSegment.objects.filter(database=database).count()
    assert stored == count, f"{label}: {stored} of {count} segments recorded"
    for segment in WalSegment.objects.filter(database=database):
        assert (archive_dir(var) / segment.key).is_file(), segment.key
    mb = count * SEGMENT / 1e6
    print(
        f"{label}: {count} segments ({mb:.0f} MB) in {seconds:.1f} s, {calls} calls, "
        f"{seconds / count:.3f} s per segment, {mb / seconds:.1f} MB/s"
    )
    shutil.rmtree(datadir)
    RUNS[label] = (str(database.id), names)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=32)
    parser.add_argument("--ahead", type=int, default=16, help="for run (b)")
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="strongbox-bench-wal-"))
    try:
        setup(var)
        print(f"load average {os.getloadavg()[0]:.1f}; {os.cpu_count()} CPUs")
        baseline = run(var, "a-one-per-call", 0, args.segments)
        ahead = run(var, f"b-ahead-{args.ahead}", args.ahead, args.segments)
        print(f"archive ratio (a)/(b): {baseline / ahead:.2f}x faster with archiving ahead")
        database_id, names = RUNS[f"b-ahead-{args.ahead}"]
        mb = len(names) * SEGMENT / 1e6
        timings = {}
        for label, prefetch in (("a-fetch-one-per-call", False), ("b-fetch-prefetched", True)):
            seconds = play_recovery(var, database_id, names, prefetch)
            timings[label] = seconds
            print(
                f"{label}: {len(names)} segments in {seconds:.1f} s, "
                f"{seconds / len(names):.3f} s per segment, {mb / seconds:.1f} MB/s"
            )
        ratio = timings["a-fetch-one-per-call"] / timings["b-fetch-prefetched"]
        print(f"fetch ratio (a)/(b): {ratio:.2f}x faster with prefetching")
    finally:
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
