"""Benchmark run_pipeline against `zstd -3 -T2` on ~500 MB of dump-like text.

    .venv/bin/python bench/bench_pipeline.py [--size-mb 500] [--dir /tmp/strongbox-bench]

Cases c and d add the two encryption formats (AES-256-GCM envelope, age); the encryption
stage alone is then timed on 1 MiB chunks of incompressible data, as it sees zstd's output
(envelope, backups.age_format, and pyrage when installed, for comparison).

Each case runs in its own process so wall time, CPU time (user + sys, children included) and
peak RSS come from os.wait4 and are comparable. The data file is generated once and reused;
it is read once before timing so every case starts from the page cache.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backups.age_format import AgeWriter, generate_identity  # noqa: E402
from backups.envelope import EnvelopeWriter  # noqa: E402
from backups.pipeline import PipelineOptions, run_pipeline  # noqa: E402

BENCH_KEY = bytes(range(32))
BENCH_RECIPIENT = generate_identity().recipient


@dataclass
class Measure:
    label: str
    wall: float  # after _summary: the best run; the machine is shared, so the best is the signal
    cpu: float
    rss_mb: float
    out_bytes: int


def generate(path: Path, size: int) -> None:
    """Tab-separated rows like a COPY section of pg_dump: ids, words, numbers, dates."""
    rng = random.Random(2026)
    vocab = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 11)))
        for _ in range(20_000)
    ]
    row_id = 0
    written = 0
    with path.open("w", encoding="ascii") as f:
        while written < size:
            rows = []
            for _ in range(20_000):
                row_id += 1
                rows.append(
                    f"{row_id}\t{' '.join(rng.choices(vocab, k=6))}\t"
                    f"{rng.choice(vocab)}@{rng.choice(vocab)}.com\t"
                    f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
                    f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00+00\t"
                    f"{rng.randint(0, 10**7) / 100:.2f}\t{rng.random() < 0.1}\n"
                )
            block = "".join(rows)
            f.write(block)
            written += len(block)


def measure(label: str, argvs: list[list[str]], out: Path) -> Measure:
    """Run argvs as a pipeline (argv[i] stdout -> argv[i+1] stdin), the last into out."""
    started = time.perf_counter()
    procs: list[subprocess.Popen[bytes]] = []
    with out.open("wb") as sink:
        stdin = None
        for i, argv in enumerate(argvs):
            last = i == len(argvs) - 1
            proc = subprocess.Popen(argv, stdin=stdin, stdout=sink if last else subprocess.PIPE)
            if stdin is not None:
                stdin.close()
            stdin = proc.stdout
            procs.append(proc)
        cpu = 0.0
        rss = 0
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise SystemExit(f"{label}: {argvs} exited {proc.returncode}")
            cpu += usage.ru_utime + usage.ru_stime
            rss = max(rss, usage.ru_maxrss)
    wall = time.perf_counter() - started
    return Measure(label, wall, cpu, rss / 1024, out.stat().st_size)


class FileSink:
    """Writes to name.partial, renamed into place on commit (like the local destination)."""

    def __init__(self, path: Path) -> None:
        self.name = "local"
        self._path = path
        self._partial = path.with_suffix(path.suffix + ".partial")
        self._file = self._partial.open("wb", buffering=0)

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def commit(self) -> None:
        self._file.close()
        self._partial.replace(self._path)

    def abort(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


def _summary(ms: list[Measure]) -> Measure:
    return Measure(
        ms[0].label,
        min(m.wall for m in ms),
        statistics.median(m.cpu for m in ms),
        statistics.median(m.rss_mb for m in ms),
        ms[0].out_bytes,
    )


def child(mode: str, source_path: str, out_path: str) -> None:
    options = PipelineOptions(
        encryption_key=BENCH_KEY if mode == "encrypted" else None,
        age_recipients=(BENCH_RECIPIENT,) if mode == "age" else (),
    )
    if mode == "pipe":
        cat = subprocess.Popen(["cat", source_path], stdout=subprocess.PIPE)
        source = cat.stdout
        assert source is not None
        result = run_pipeline(source, [FileSink(Path(out_path))], options, source_done=cat.wait)
        source.close()
    else:
        with open(source_path, "rb") as source:
            result = run_pipeline(source, [FileSink(Path(out_path))], options)
    print(json.dumps({"sha256": result.sha256, "bytes_out": result.bytes_out}), file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "strongbox-bench")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; medians shown")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "SRC", "OUT"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    args.dir.mkdir(parents=True, exist_ok=True)
    data = args.dir / f"dump-{args.size_mb}mb.txt"
    size = args.size_mb * 1_000_000
    if not data.exists() or data.stat().st_size < size:
        print(f"generating {data} ...", flush=True)
        generate(data, size)
    with data.open("rb") as f:  # warm the page cache
        while f.read(8 << 20):
            pass
    src = str(data)
    me = [sys.executable, __file__]
    cases = [
        ("a  zstd -3 -T2 -c file", [["zstd", "-3", "-T2", "-q", "-c", src]]),
        ("a' cat file | zstd -3 -T2", [["cat", src], ["zstd", "-3", "-T2", "-q", "-c"]]),
        ("b  pipeline zstd (file)", [[*me, "--child", "plain", src, "-"]]),
        ("b' pipeline zstd (cat pipe)", [[*me, "--child", "pipe", src, "-"]]),
        ("c  pipeline zstd+AES-GCM", [[*me, "--child", "encrypted", src, "-"]]),
        ("d  pipeline zstd+age", [[*me, "--child", "age", src, "-"]]),
    ]
    runs: dict[str, list[Measure]] = {}
    # Interleave the cases so drift in machine load hits them all alike.
    for _ in range(args.repeat):
        for label, argvs in cases:
            out = args.dir / f"out-{label[:2].strip()}.bin"
            out.unlink(missing_ok=True)
            os.sync()  # don't time the write-back of the previous case's output
            argvs = [[str(out) if a == "-" else a for a in argv] for argv in argvs]
            if "--child" in argvs[0]:
                # Child cases write through their own sink; their stdout is unused.
                m = measure(label, argvs, args.dir / "stdout.discard")
                m.out_bytes = out.stat().st_size
            else:
                m = measure(label, argvs, out)
            runs.setdefault(label[:2].strip(), []).append(m)
    results = {key: _summary(ms) for key, ms in runs.items()}

    in_mb = data.stat().st_size / 1e6
    print(f"\ninput {in_mb:.0f} MB, {os.cpu_count()} CPUs, {args.repeat} runs per case")
    print("wall: best run (the machine is shared); cpu and RSS: median")
    print(f"{'case':32} {'wall s':>7} {'MB/s':>7} {'cpu s':>7} {'RSS MB':>7} {'ratio':>6}")
    for m in results.values():
        print(
            f"{m.label:32} {m.wall:7.2f} {in_mb / m.wall:7.0f} {m.cpu:7.2f} {m.rss_mb:7.0f} "
            f"{in_mb * 1e6 / m.out_bytes:6.2f}"
        )
    print()
    for num, den in [("b", "a"), ("c", "a"), ("d", "a"), ("d", "c"), ("b'", "a'")]:
        n, d = results[num], results[den]
        print(
            f"{num}/{den}: wall {n.wall / d.wall:.2f}x  cpu {n.cpu / d.cpu:.2f}x  "
            f"rss {n.rss_mb / d.rss_mb:.2f}x"
        )
    encryption_stage(args.repeat)


def encryption_stage(repeat: int, total_mib: int = 256) -> None:
    """MiB/s of each format's encryption alone, best of ``repeat``, on 1 MiB chunks."""
    chunk = os.urandom(1 << 20)

    def envelope() -> None:
        writer = EnvelopeWriter(BENCH_KEY, "bench", 1 << 20)
        for _ in range(total_mib):
            writer.seal(chunk, final=False)

    def age() -> None:
        writer = AgeWriter([BENCH_RECIPIENT], 1 << 20)
        for _ in range(total_mib):
            writer.seal(chunk, final=False)

    cases = {"AES-256-GCM envelope": envelope, "age (backups.age_format)": age}
    try:
        import pyrage  # noqa: PLC0415 - optional, only for the comparison

        recipients = [pyrage.x25519.Recipient.from_str(BENCH_RECIPIENT)]
        whole = chunk * total_mib
        cases["pyrage.encrypt (whole buffer)"] = lambda: pyrage.encrypt(whole, recipients)
    except ImportError:
        pass
    rates = {}
    for name, run in cases.items():
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - started)
        rates[name] = total_mib / best
    print(f"\nencryption stage alone, {total_mib} MiB of incompressible 1 MiB chunks (best run):")
    for name, rate in rates.items():
        ratio = rate / rates["AES-256-GCM envelope"]
        print(f"  {name:32} {rate:7.0f} MiB/s  {ratio:.2f}x the envelope")


if __name__ == "__main__":
    main()
