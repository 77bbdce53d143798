"""The memory of a real django-q2 worker over many backups in a row, and one job's peak at
each database size.

    .venv/bin/python bench/bench_worker_rss.py [--engine postgresql|mariadb]
        [--sizes 250,500] [--jobs 12] [--keep]

Starts `manage.py qcluster` with one worker (bench_backup.Harness), then runs --jobs local
backups of each size, one after another. After each job it prints the worker process'
VmRSS, its anonymous memory and PSS (/proc/<pid>/smaps_rollup), and the job's peak: the
summed VmRSS of the worker and its children (the dump tool) sampled every 25 ms. The worker
process is the one running the task (django-q2 runs it in the worker, not a child of it);
the cluster's other processes (sentinel, pusher, monitor) are not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

from bench_backup import (
    Harness,
    drop_database,
    fill_mariadb,
    fill_postgres,
    load,
    worker_backup,
    worker_warm_up,
)


def rollup(pid: int) -> dict[str, int]:
    """Rss, Pss and Anonymous of a process, in bytes."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss", "Anonymous"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["postgresql", "mariadb"], default="postgresql")
    parser.add_argument("--sizes", default="250,500")
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument(
        "--db-prefix", default="", help="name the source databases <prefix>_<size>mb"
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    prefix = args.db_prefix or ("sbx_bench" if args.engine == "postgresql" else "sbx_bench_my")
    names = [f"{prefix}_{s}mb" for s in sizes]
    fill = fill_postgres if args.engine == "postgresql" else fill_mariadb
    for size, name in zip(sizes, names, strict=True):
        print(f"database {name}: {fill(name, size) / 2**20:.0f} MB")
    harness = Harness.start(args.engine, s3=False)
    try:
        ids = harness.objects(names)
        worker = harness.worker
        assert worker is not None  # noqa: S101 - started by Harness.start
        start_load = load()
        worker_warm_up(worker, ids[names[0]], ids["local"])
        pid = worker.worker_pid
        first = rollup(pid)
        print(
            f"worker {pid} after one warm-up job: RSS {first['Rss'] / 2**20:.0f} MB,"
            f" anonymous {first['Anonymous'] / 2**20:.0f} MB, PSS {first['Pss'] / 2**20:.0f} MB;"
            f" load {start_load}"
        )
        print(
            f"{'job':>4} {'DB MB':>6} {'wall s':>7} {'job peak MB':>11} {'RSS after':>9}"
            f" {'anon after':>10} {'PSS after':>9}"
        )
        peaks: dict[int, list[float]] = {s: [] for s in sizes}
        after = []
        job = 0
        for size, name in zip(sizes, names, strict=True):
            for _ in range(args.jobs):
                job += 1
                case = worker_backup(worker, "rss", ids[name], ids["local"])
                harness.empty_destinations()
                time.sleep(0.2)  # let the task's thread and the result write finish
                memory = rollup(pid)
                after.append(memory["Rss"])
                peaks[size].append(case.peak / 2**20)
                print(
                    f"{job:>4} {size:>6} {case.wall:>7.2f} {case.peak / 2**20:>11.0f}"
                    f" {memory['Rss'] / 2**20:>9.1f} {memory['Anonymous'] / 2**20:>10.1f}"
                    f" {memory['Pss'] / 2**20:>9.1f}",
                    flush=True,
                )
        if worker.worker_pid != pid:
            print(f"note: the worker process changed ({pid} -> {worker.worker_pid})")
        print()
        print(
            f"worker RSS after job 1 {after[0] / 2**20:.1f} MB, after job {job}"
            f" {after[-1] / 2**20:.1f} MB: growth {(after[-1] - after[0]) / 2**20:+.1f} MB"
            f" over {job - 1} jobs"
        )
        print(
            "median job peak (worker + dump tool): "
            + ", ".join(f"{s} MB DB {statistics.median(peaks[s]):.0f} MB" for s in sizes)
            + f"; load before {start_load}, after {load()}"
        )
    finally:
        harness.stop()
        if not args.keep:
            for name in names:
                with contextlib.suppress(Exception):
                    drop_database(args.engine, name)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
