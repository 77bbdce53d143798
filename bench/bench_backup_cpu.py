"""The CPU this process spends on a backup, stage by stage, beside the shell pipeline's zstd.

    .venv/bin/python bench/bench_backup_cpu.py [--engines postgresql,mariadb] [--size 250]
        [--rounds 5] [--stages read,stream,none,zstd,backup,cli] [--threads] [--keep]
        [--against DIR]

On a machine whose cores the dump tool and zstd already keep busy, every CPU-second of ours
is wall time, and CPU time (unlike wall time) is barely moved by other load: so this counts
CPU. Each round runs every stage once, interleaved; medians of --rounds (at least 5):
  read    the dump tool's stdout read to EOF, 1 MiB at a time, nothing else (the floor)
  stream  the engine's dump (``engine.open_dump``: row counts, PostgreSQL's checksums), read so
  none    run_pipeline(the tool's plain stdout, no compression) into a local sink
  zstd    run_pipeline(the tool's plain stdout, zstd -3, 2 threads) into a local sink
  backup  ``engine.open_dump`` + run_pipeline zstd into a local sink: the worker's streaming
  cli     ``dump | zstd -q -3 -T2 -o file``: the baseline; its zstd's CPU is cli's children
          minus read's children (the dump tool alone)
"self" is RUSAGE_SELF (every thread of this process, zstd's workers included), "children"
RUSAGE_CHILDREN (the dump tool, reaped). With --threads the backup stage also samples
/proc/self/task every 20 ms and prints each thread's CPU (pipeline threads by name, zstd's
native workers as "zstd-worker"), medians of the rounds. The databases are bench_backup.py's.

CPU time still moves with the machine's load (caches, the other core's work), so a change is
judged with --against DIR (say a worktree of main): each round runs the stages once with
this checkout's code and once with DIR's, alternating, each in a fresh child process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import django  # noqa: E402
from bench_backup import MY, PG, drop_database, fill_mariadb, fill_postgres  # noqa: E402

# --against runs children that import the code under test from another checkout.
sys.path.insert(0, os.environ.get("BENCH_CODE_ROOT") or str(ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django.setup()  # for backups.execution's reader; no query is made

from backups.engines.base import ConnectionSpec, ProcessDump  # noqa: E402
from backups.engines.mysql import MySQLEngine  # noqa: E402
from backups.engines.postgresql import PostgreSQLEngine  # noqa: E402
from backups.execution import _FinishingReader  # noqa: E402
from backups.memory import fix_malloc_threshold  # noqa: E402
from backups.pipeline import PipelineOptions, run_pipeline  # noqa: E402
from destinations.storage import LocalSink  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
STAGES = ("read", "stream", "none", "zstd", "backup", "cli")


def spec_for(engine: str, name: str) -> ConnectionSpec:
    server = PG if engine == "postgresql" else MY
    return ConnectionSpec(
        engine=engine, host=server["host"], port=server["port"], user=server["user"], name=name
    )


def plain_dump(engine: str, spec: ConnectionSpec) -> ProcessDump:
    """The dump tool as the engine runs it, its stdout not read by any counter."""
    if engine == "postgresql":
        pg = PostgreSQLEngine()
        return ProcessDump(pg.dump_argv(spec), env=pg.dump_env(spec))
    return ProcessDump(MySQLEngine(engine).dump_argv(spec))


def engine_dump(engine: str, spec: ConnectionSpec):
    if engine == "postgresql":
        return PostgreSQLEngine().open_dump(spec)
    return MySQLEngine(engine).open_dump(spec)


def Finishing(dump):  # noqa: N802 - stands for the class
    """What backups.execution hands the pipeline: the dump's stdout, finished at EOF."""
    return _FinishingReader(dump, lambda: None)


def read_all(dump) -> int:
    size = 0
    with dump:
        source = Finishing(dump)
        while data := source.read(1 << 20):
            size += len(data)
    return size


def pipeline(dump, out: Path, compression: str) -> int:
    options = PipelineOptions(compression=compression, level=3, threads=2)
    with dump:
        sink = LocalSink("local", out, "bench")
        result = run_pipeline(Finishing(dump), [sink], options)
    out.unlink()
    return result.bytes_in


def cli(engine: str, spec: ConnectionSpec, out: Path) -> int:
    dump = plain_dump(engine, spec)
    with dump:
        zstd = subprocess.Popen(
            ["zstd", "-q", "-3", "-T2", "-f", "-o", str(out)], stdin=dump.stdout
        )
        dump.stdout.close()
        if zstd.wait() != 0:
            raise SystemExit("zstd failed")
        dump.finish()
    size = out.stat().st_size
    out.unlink()
    return size


class ThreadCPU:
    """Samples each thread's utime+stime from /proc/self/task; keeps the last per thread."""

    INTERVAL = 0.02

    def __init__(self) -> None:
        self.cpu: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> ThreadCPU:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            self.sample()

    def sample(self) -> None:
        for thread in threading.enumerate():
            if thread.native_id is not None:
                self.names[thread.native_id] = thread.name
        for entry in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                with open(f"/proc/self/task/{entry}/stat", encoding="ascii") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                self.cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / TICKS

    def by_name(self, before: dict[int, float]) -> dict[str, float]:
        totals: dict[str, float] = {}
        for tid, cpu in self.cpu.items():
            name = self.names.get(tid, "zstd-worker")
            if name.startswith("Thread-"):  # the engines' stderr collectors
                name = "stderr"
            totals[name] = totals.get(name, 0.0) + cpu - before.get(tid, 0.0)
        return totals


def measure(work: Callable[[], int]) -> tuple[float, float, int]:
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    size = work()
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime)
    children = (child1.ru_utime - child0.ru_utime) + (child1.ru_stime - child0.ru_stime)
    return own, children, size


def stage_works(engine: str, spec: ConnectionSpec, out: Path) -> dict[str, Callable[[], int]]:
    return {
        "read": lambda: read_all(plain_dump(engine, spec)),
        "stream": lambda: read_all(engine_dump(engine, spec)),
        "none": lambda: pipeline(plain_dump(engine, spec), out, "none"),
        "zstd": lambda: pipeline(plain_dump(engine, spec), out, "zstd"),
        "backup": lambda: pipeline(engine_dump(engine, spec), out, "zstd"),
        "cli": lambda: cli(engine, spec, out),
    }


def run_engine(engine: str, name: str, args, out: Path) -> None:
    spec = spec_for(engine, name)
    stages = stage_works(engine, spec, out)
    chosen = [s for s in args.stages.split(",") if s]
    runs: dict[str, list[tuple[float, float]]] = {s: [] for s in chosen}
    threads: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    loads = [os.getloadavg()[0]]
    read_all(plain_dump(engine, spec))  # warm the server's cache
    for round_no in range(args.rounds):
        order = chosen[round_no % len(chosen) :] + chosen[: round_no % len(chosen)]
        for stage in order:
            if stage == "backup" and args.threads:
                sampler = ThreadCPU()
                sampler.sample()
                before = dict(sampler.cpu)
                with sampler:
                    own, children, size = measure(stages[stage])
                for thread, cpu in sampler.by_name(before).items():
                    threads.setdefault(thread, []).append(cpu)
            else:
                own, children, size = measure(stages[stage])
            runs[stage].append((own, children))
            sizes[stage] = size
        loads.append(os.getloadavg()[0])
    print(
        f"\n{engine} {name}: {sizes.get('read', sizes.get('backup', 0)) / 2**20:.0f} MiB dump;"
        f" {args.rounds} rounds; load (1 min) {min(loads):.2f} .. {max(loads):.2f}"
    )
    print(f"  {'stage':8} {'self cpu s':>10} {'children s':>10}   self runs")
    medians = {}
    for stage, values in runs.items():
        own = statistics.median(v[0] for v in values)
        children = statistics.median(v[1] for v in values)
        medians[stage] = (own, children)
        print(
            f"  {stage:8} {own:>10.3f} {children:>10.3f}   "
            + ", ".join(f"{v[0]:.2f}" for v in values)
        )
    if "cli" in medians and "read" in medians:
        zstd_cpu = medians["cli"][1] - medians["read"][1]
        print(f"  the CLI's zstd -3 -T2: {zstd_cpu:.3f} s (cli's children - read's children)")
        if "backup" in medians:
            extra = medians["backup"][0] - zstd_cpu
            print(f"  backup's own CPU beyond the CLI's zstd: {extra:+.3f} s")
    for thread, values in sorted(threads.items()):
        print(f"  thread {thread:24} {statistics.median(values):.3f} s")


def one_round(engine: str, name: str, stages: list[str], out: Path) -> None:
    """--child: each stage once, in this process; prints {stage: [self, children]}."""
    spec = spec_for(engine, name)
    works = stage_works(engine, spec, out)
    print(json.dumps({stage: measure(works[stage])[:2] for stage in stages}))


def against(engine: str, name: str, args, other: str) -> None:
    """Each round, this checkout's code and ``other``'s in turn (children of this script),
    so that both meet the same machine; medians and their difference."""
    sides = {"this": "", "other": str(Path(other).resolve())}
    runs: dict[str, dict[str, list[tuple[float, float]]]] = {side: {} for side in sides}
    loads = [os.getloadavg()[0]]
    read_all(plain_dump(engine, spec_for(engine, name)))  # warm the server's cache
    for round_no in range(args.rounds):
        order = list(sides) if round_no % 2 == 0 else list(sides)[::-1]
        for side in order:
            argv = [sys.executable, __file__, "--child", "--engines", engine, "--name", name]
            env = {**os.environ, "BENCH_CODE_ROOT": sides[side]}
            done = subprocess.run(
                [*argv, "--stages", args.stages], env=env, check=True, capture_output=True
            )
            for stage, value in json.loads(done.stdout.splitlines()[-1]).items():
                runs[side].setdefault(stage, []).append(tuple(value))
        loads.append(os.getloadavg()[0])
    print(
        f"\n{engine} {name}: this checkout against {other}; {args.rounds} rounds, alternating;"
        f" load (1 min) {min(loads):.2f} .. {max(loads):.2f}"
    )
    print(f"  {'stage':8} {'this self':>9} {'other self':>10} {'this-other':>10}   children")
    for stage in runs["this"]:
        this = statistics.median(v[0] for v in runs["this"][stage])
        that = statistics.median(v[0] for v in runs["other"][stage])
        children = [statistics.median(v[1] for v in runs[side][stage]) for side in sides]
        print(
            f"  {stage:8} {this:>9.3f} {that:>10.3f} {this - that:>+10.3f}   "
            + " / ".join(f"{c:.3f}" for c in children)
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engines", default="postgresql,mariadb")
    parser.add_argument("--size", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--threads", action="store_true", help="per-thread CPU of backup")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    parser.add_argument(
        "--against", metavar="DIR", help="compare with the code of another checkout, e.g. main's"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    args = parser.parse_args()
    fix_malloc_threshold()  # as every worker process does (backups.memory)
    out = Path(tempfile.mkdtemp(prefix="strongbox-cpu-")) / "artifact"
    if args.child:
        try:
            one_round(args.engines, args.name, args.stages.split(","), out)
        finally:
            out.parent.rmdir()
        return
    if args.rounds < 5:
        parser.error("--rounds must be at least 5: medians of fewer runs are not reported")
    made = []
    try:
        for engine in args.engines.split(","):
            if engine == "postgresql":
                name = f"sbx_bench_{args.size}mb"
                fill_postgres(name, args.size)
            else:
                name = f"sbx_bench_my_{args.size}mb"
                fill_mariadb(name, args.size)
            made.append((engine, name))
            if args.against:
                against(engine, name, args, args.against)
            else:
                run_engine(engine, name, args, out)
    finally:
        with contextlib.suppress(OSError):
            out.parent.rmdir()
        if not args.keep:
            for engine, name in made:
                drop_database(engine, name)


if __name__ == "__main__":
    main()
