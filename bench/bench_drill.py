"""Benchmark a restore drill of a PostgreSQL database against a plain restore of it.

    .venv/bin/python bench/bench_drill.py [--size-mb 20] [--runs 3] [--dir DIR]

One real backup (pg_dump -> zstd -> AES-GCM -> local destination) is made through the
services; then, interleaved (drill, restore, drill, restore, …) so that cache and
checkpoint state favour neither:

- a drill (``drill_execute``): verify the artifact, load it into a throwaway database on the
  same server, count every table, drop it;
- a restore (``restore_execute``, in place, safety backup off: a safety backup is a backup,
  not part of a restore's cost): verify, load into a scratch copy, count, swap, drop the
  previous database.

Each run is timed up to a CHECKPOINT, so each pays for flushing its own writes. Prints the
median of each and the ratio drill / restore (the issue's target: <= 1.0), and the drills'
own RTO (start to counted data) next to their wall time. Servers come from
STRONGBOX_TEST_PG_* as in the tests; a throwaway Django database and artifacts live under
--dir.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The source database, the Django set-up and the backup are bench_restore.py's.
from bench_restore import (  # noqa: E402 - after sys.path
    create_source,
    database_size,
    psql,
    setup_django,
    strongbox_backup,
)

SOURCE = "sbx_bench_drill_src"


def run_drill(backup) -> float:
    from drills.services import drill_claim, drill_execute, drill_request  # noqa: PLC0415

    drill = drill_request(database=backup.database, backup=backup, enqueue=False)
    done = drill_execute(drill=drill_claim(drill_id=drill.id))
    if done.status != "passed":
        raise SystemExit(f"drill failed: {done.message}")
    return done.rto_seconds


def run_restore(backup) -> None:
    from restores.services import restore_claim, restore_execute, restore_request  # noqa: PLC0415

    restore = restore_request(
        backup=backup, target_type="same", take_safety_backup=False, enqueue=False
    )
    done = restore_execute(restore=restore_claim(restore_id=restore.id))
    if done.status != "completed":
        raise SystemExit(f"restore failed: {done.message}")


def timed(func) -> tuple[float, object]:
    psql("CHECKPOINT")
    started = time.perf_counter()
    result = func()
    psql("CHECKPOINT")
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default="")
    args = parser.parse_args()
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="strongbox-bench-drill-"))
    workdir.mkdir(parents=True, exist_ok=True)

    create_source(args.size_mb, SOURCE, at_most=1.3)
    setup_django(workdir)
    backup = strongbox_backup(SOURCE)
    print(f"backup: {backup.size / 2**20:.1f} MB stored, {sum(backup.row_counts.values())} rows")

    drills, restores, rtos = [], [], []
    for run in range(1, args.runs + 1):
        wall, rto = timed(lambda: run_drill(backup))
        drills.append(wall)
        rtos.append(rto)
        print(f"  run {run}: drill   {wall:7.2f}s (its RTO {rto:.2f}s)")
        wall, _ = timed(lambda: run_restore(backup))
        restores.append(wall)
        print(f"  run {run}: restore {wall:7.2f}s")
    drill, restore = statistics.median(drills), statistics.median(restores)
    print(
        f"size {database_size(SOURCE) / 2**20:.0f} MB, {args.runs} interleaved runs: "
        f"drill median {drill:.2f}s (RTO median {statistics.median(rtos):.2f}s), "
        f"restore median {restore:.2f}s, ratio drill/restore {drill / restore:.2f}"
    )


if __name__ == "__main__":
    main()
