"""The streaming pipeline on plain streams: round trips, failures, tampering, memory bounds."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import os
import random
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from typing import BinaryIO

import pytest

from backups.engines.base import enlarge_pipe
from backups.pipeline import (
    ArtifactCorrupt,
    ContainerWriter,
    PipelineCancelled,
    PipelineError,
    PipelineOptions,
    Progress,
    container_source,
    iter_container,
    open_artifact,
    run_pipeline,
    sha256_of,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(reversed(range(32)))
SMALL = 4096  # small chunks so modest inputs span many envelope chunks


class MemorySink:
    """Collects the artifact in memory and records the calls it got."""

    def __init__(self, name: str, *, fail_after: int | None = None, fail_commit: bool = False):
        self.name = name
        self.buffer = bytearray()
        self.writes = 0
        self.largest_write = 0
        self.committed = False
        self.aborted = False
        self._fail_after = fail_after
        self._fail_commit = fail_commit

    def write(self, chunk: bytes) -> None:
        if self._fail_after is not None and self.writes >= self._fail_after:
            raise OSError(f"{self.name}: disk full")
        self.writes += 1
        self.largest_write = max(self.largest_write, len(chunk))
        self.buffer += chunk

    def commit(self) -> None:
        if self._fail_commit:
            raise OSError(f"{self.name}: upload rejected")
        self.committed = True

    def abort(self) -> None:
        self.aborted = True
        self.buffer.clear()


class SlowSink:
    """Keeps only a running hash, sleeping per write to force backpressure."""

    def __init__(self, name: str, delay: float) -> None:
        self.name = name
        self.delay = delay
        self.digest = hashlib.sha256()
        self.committed = False

    def write(self, chunk: bytes) -> None:
        time.sleep(self.delay)
        self.digest.update(chunk)

    def commit(self) -> None:
        self.committed = True

    def abort(self) -> None:
        pass


class GeneratedSource(io.RawIOBase):
    """size bytes of text-like data, produced on demand so the test holds none of it."""

    def __init__(self, size: int, *, fail_at: int | None = None) -> None:
        rng = random.Random(7)
        words = [bytes(rng.choices(b"abcdefghijklmnop", k=rng.randint(2, 9))) for _ in range(500)]
        self._block = b" ".join(rng.choices(words, k=200_000))[: 1 << 20]
        self._left = size
        self._offset = 0
        self.position = 0
        self._fail_at = fail_at

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._fail_at is not None and self.position >= self._fail_at:
            raise OSError("pg_dump: connection lost")
        n = min(len(buffer), self._left, len(self._block) - self._offset)
        buffer[:n] = self._block[self._offset : self._offset + n]
        self._offset = (self._offset + n) % len(self._block)
        self._left -= n
        self.position += n
        return n


def text_bytes(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = [
        bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 10))) for _ in range(800)
    ]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choices(words, k=1000)) + b"\n"
    return bytes(out[:size])


def read_back(artifact: bytes, key: bytes | None = KEY) -> bytes:
    with open_artifact(io.BytesIO(artifact), key_for=lambda key_id: key) as stream:  # type: ignore[arg-type,return-value]
        return stream.read()


def pipeline_threads() -> list[threading.Thread]:
    return [
        t for t in threading.enumerate() if t.name.startswith(("pipeline-", "sink-", "container-"))
    ]


COMPRESSIONS = ["zstd", "gzip", "none"]
SIZES = [0, 1, SMALL - 1, SMALL, SMALL + 1, 300_000]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("size", SIZES)
def test_it_round_trips_every_compression_and_encryption(compression, encrypted, size):
    data = text_bytes(size)
    options = PipelineOptions(
        compression=compression,
        encryption_key=KEY if encrypted else None,
        key_id="org-1/key-7",
        chunk_size=SMALL,
        queue_depth=2,
    )
    sinks = [MemorySink("local"), MemorySink("s3")]

    result = run_pipeline(io.BytesIO(data), sinks, options)

    artifact = bytes(sinks[0].buffer)
    assert bytes(sinks[1].buffer) == artifact
    assert result.committed == ["local", "s3"]
    assert result.failed == {}
    assert result.bytes_in == size
    assert result.bytes_out == len(artifact)
    assert result.sha256 == hashlib.sha256(artifact).hexdigest()
    assert sha256_of(io.BytesIO(artifact)) == (result.sha256, len(artifact))
    assert read_back(artifact) == data
    assert artifact.startswith(b"SBXE1") == encrypted
    assert pipeline_threads() == []


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_it_hands_sinks_chunks_no_bigger_than_chunk_size(encrypted):
    # zstd's worker threads emit multi-MiB bursts; they must not reach the queues whole.
    data = text_bytes(12 << 20)
    sink = MemorySink("a")
    options = PipelineOptions(
        chunk_size=64 << 10, queue_depth=2, encryption_key=KEY if encrypted else None
    )

    run_pipeline(io.BytesIO(data), [sink], options)

    assert sink.largest_write <= (64 << 10) + 4 + 16 + 5  # frame length, tag (or magic)
    assert read_back(bytes(sink.buffer)) == data


def test_it_writes_what_the_standard_tools_read():
    data = text_bytes(200_000)
    for compression, decode in [
        ("gzip", gzip.decompress),
        (
            "zstd",
            lambda b: (
                subprocess.run(["zstd", "-dc"], input=b, capture_output=True, check=True).stdout
            ),
        ),
    ]:
        sink = MemorySink("local")
        run_pipeline(io.BytesIO(data), [sink], PipelineOptions(compression=compression))
        assert decode(bytes(sink.buffer)) == data


def test_it_reads_artifacts_made_by_the_zstd_tool():
    data = text_bytes(100_000)
    compressed = subprocess.run(
        ["zstd", "-3", "-c"], input=data, capture_output=True, check=True
    ).stdout

    assert read_back(compressed, key=None) == data


def test_it_keeps_good_copies_when_one_sink_fails():
    data = text_bytes(200_000)
    good, bad, also_good = MemorySink("good"), MemorySink("bad", fail_after=3), MemorySink("b2")
    options = PipelineOptions(compression="none", encryption_key=KEY, chunk_size=SMALL)

    result = run_pipeline(io.BytesIO(data), [good, bad, also_good], options)

    assert result.committed == ["good", "b2"]
    assert result.failed == {"bad": "bad: disk full"}
    assert bad.aborted and not bad.committed and bad.buffer == b""
    assert good.committed and also_good.committed
    assert read_back(bytes(good.buffer)) == data
    assert bytes(also_good.buffer) == bytes(good.buffer)


def test_it_reports_a_sink_whose_commit_fails():
    good, bad = MemorySink("good"), MemorySink("bad", fail_commit=True)

    result = run_pipeline(io.BytesIO(b"dump"), [good, bad])

    assert result.committed == ["good"]
    assert result.failed == {"bad": "bad: upload rejected"}
    assert bad.aborted


def test_it_raises_when_every_sink_fails():
    sinks = [MemorySink("a", fail_after=1), MemorySink("b", fail_after=2)]
    options = PipelineOptions(compression="none", chunk_size=SMALL)

    with pytest.raises(PipelineError, match="every sink failed"):
        run_pipeline(GeneratedSource(10 << 20), sinks, options)

    assert all(s.aborted and not s.committed for s in sinks)
    assert pipeline_threads() == []


def test_it_aborts_every_sink_when_the_source_fails():
    sinks = [MemorySink("a"), MemorySink("b")]
    source = GeneratedSource(50 << 20, fail_at=3 << 20)

    with pytest.raises(PipelineError, match="connection lost"):
        run_pipeline(source, sinks)

    assert all(s.aborted and not s.committed for s in sinks)
    assert pipeline_threads() == []


def test_it_aborts_every_sink_when_source_done_raises():
    sinks = [MemorySink("a"), MemorySink("b")]

    def source_done() -> None:
        raise RuntimeError("pg_dump exited with status 1")

    with pytest.raises(PipelineError, match="exited with status 1"):
        run_pipeline(io.BytesIO(b"partial dump"), sinks, source_done=source_done)

    assert all(s.aborted and not s.committed for s in sinks)
    assert pipeline_threads() == []


def test_it_commits_only_after_source_done_returned():
    sink = MemorySink("a")
    seen = []

    run_pipeline(io.BytesIO(b"dump"), [sink], source_done=lambda: seen.append(sink.committed))

    assert seen == [False]
    assert sink.committed


def test_it_aborts_every_sink_when_cancelled():
    cancel = threading.Event()
    sinks = [SlowSink("slow", delay=0.01), MemorySink("fast")]
    threading.Timer(0.3, cancel.set).start()

    with pytest.raises(PipelineCancelled):
        run_pipeline(GeneratedSource(1 << 40), sinks, cancel=cancel)

    assert not sinks[0].committed
    assert sinks[1].aborted and not sinks[1].committed
    assert pipeline_threads() == []


def test_it_cancels_while_a_pipe_source_is_silent():
    # The dump produced nothing yet: the reader must not sit in read() forever.
    read_fd, write_fd = os.pipe()
    cancel = threading.Event()
    sink = MemorySink("a")
    threading.Timer(0.2, cancel.set).start()
    try:
        with open(read_fd, "rb") as source, pytest.raises(PipelineCancelled):
            run_pipeline(source, [sink], cancel=cancel)
    finally:
        os.close(write_fd)

    assert sink.aborted
    assert pipeline_threads() == []


def test_it_streams_from_a_subprocess_pipe():
    data = text_bytes(3 << 20)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    feeder = threading.Thread(target=lambda: (proc.stdin.write(data), proc.stdin.close()))
    feeder.start()
    sink = MemorySink("a")

    def source_done() -> None:
        if proc.wait() != 0:
            raise RuntimeError(f"exit {proc.returncode}")

    run_pipeline(proc.stdout, [sink], source_done=source_done)
    feeder.join()
    proc.stdout.close()

    assert read_back(bytes(sink.buffer)) == data


class CountingPipe:
    """A pipe's read end that counts the reads the pipeline makes on it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.reads = 0

    def readinto(self, buffer) -> int:
        self.reads += 1
        return self.raw.readinto(buffer)

    def fileno(self) -> int:
        return self.raw.fileno()


def test_it_reads_a_tool_writing_4_kib_at_a_time_in_a_few_large_reads():
    # As pg_dump and mariadb-dump write (stdio's 4 KiB) into the engines' 1 MiB pipe.
    size = 4 << 20
    writer = (
        "import os, sys, time\n"
        f"for _ in range({size // 4096}):\n"
        "    os.write(1, b'x' * 4095 + b'\\n'); time.sleep(0.0001)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, bufsize=0)
    enlarge_pipe(proc.stdout)
    source = CountingPipe(proc.stdout)
    sink = MemorySink("a")

    result = run_pipeline(source, [sink], PipelineOptions(compression="none"))
    proc.wait()
    proc.stdout.close()

    assert result.bytes_in == size and bytes(sink.buffer) == (b"x" * 4095 + b"\n") * 1024
    # One read per write would be 1,024; napping after short reads lets the pipe fill (about
    # 100 reads on a quiet machine; a loaded one only makes the reads larger).
    assert source.reads < 512, source.reads


def test_it_reports_progress_a_few_times_a_second():
    reports: list[Progress] = []
    sink = SlowSink("slow", delay=0.005)
    options = PipelineOptions(compression="none", chunk_size=64 << 10, queue_depth=2)

    run_pipeline(GeneratedSource(16 << 20), [sink], options, progress=reports.append)

    assert len(reports) >= 2
    gaps = [b.elapsed - a.elapsed for a, b in itertools.pairwise(reports[:-1])]
    assert all(gap >= 0.24 for gap in gaps)
    assert reports[-1].bytes_in == 16 << 20
    assert reports[-1].bytes_out == 16 << 20


# --- tampering ---------------------------------------------------------------------------


def encrypted_artifact(data: bytes, compression: str = "none") -> bytes:
    sink = MemorySink("a")
    options = PipelineOptions(
        compression=compression, encryption_key=KEY, key_id="k1", chunk_size=SMALL
    )
    run_pipeline(io.BytesIO(data), [sink], options)
    return bytes(sink.buffer)


def split_envelope(artifact: bytes) -> tuple[bytes, list[bytes]]:
    key_id_len = struct.unpack(">H", artifact[5:7])[0]
    header_len = 5 + 2 + key_id_len + 4 + 8
    frames, pos = [], header_len
    while pos < len(artifact):
        length = struct.unpack(">I", artifact[pos : pos + 4])[0]
        frames.append(artifact[pos : pos + 4 + length])
        pos += 4 + length
    return artifact[:header_len], frames


DATA = text_bytes(5 * SMALL + 100)


def test_the_envelope_splits_into_the_documented_chunks():
    header, frames = split_envelope(encrypted_artifact(DATA))

    assert header.startswith(b"SBXE1\x00\x02k1")
    assert len(frames) == 6  # five full chunks and a short final one
    assert [len(f) for f in frames[:5]] == [4 + SMALL + 16] * 5


# Byte 0 is left out: a damaged magic reads as a raw artifact, caught by the recorded sha256.
@pytest.mark.parametrize("position", [5, 7, 9, 20, 4000, -1])
def test_it_detects_a_tampered_byte(position):
    artifact = bytearray(encrypted_artifact(DATA))
    position = position if position >= 0 else len(artifact) + position
    artifact[position] ^= 0x01

    with pytest.raises(ArtifactCorrupt):
        read_back(bytes(artifact))


@pytest.mark.parametrize("drop", [1, 100, SMALL + 20])
def test_it_detects_truncation(drop):
    artifact = encrypted_artifact(DATA)

    with pytest.raises(ArtifactCorrupt):
        read_back(artifact[:-drop])


def test_it_detects_truncation_at_a_chunk_boundary():
    header, frames = split_envelope(encrypted_artifact(DATA))

    with pytest.raises(ArtifactCorrupt):
        read_back(header + b"".join(frames[:-1]))
    with pytest.raises(ArtifactCorrupt):
        read_back(header)


def test_it_detects_reordered_chunks():
    header, frames = split_envelope(encrypted_artifact(DATA))
    frames[1], frames[2] = frames[2], frames[1]

    with pytest.raises(ArtifactCorrupt):
        read_back(header + b"".join(frames))


def test_it_detects_appended_chunks():
    header, frames = split_envelope(encrypted_artifact(DATA))

    with pytest.raises(ArtifactCorrupt):
        read_back(header + b"".join(frames) + frames[-1])


def test_it_rejects_the_wrong_key():
    with pytest.raises(ArtifactCorrupt):
        read_back(encrypted_artifact(DATA, "zstd"), key=OTHER_KEY)


def test_it_asks_for_the_key_by_the_id_in_the_header():
    asked = []

    def key_for(key_id: str) -> bytes:
        asked.append(key_id)
        return KEY

    stream = open_artifact(io.BytesIO(encrypted_artifact(DATA, "gzip")), key_for=key_for)

    assert stream.read() == DATA
    assert asked == ["k1"]


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_it_detects_a_truncated_unencrypted_stream(compression):
    sink = MemorySink("a")
    run_pipeline(io.BytesIO(DATA), [sink], PipelineOptions(compression=compression))

    with pytest.raises(ArtifactCorrupt):
        read_back(bytes(sink.buffer[:-5]), key=None)


# --- memory ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_it_keeps_memory_bounded_behind_a_slow_sink():
    size = 300 << 20
    source = GeneratedSource(size)
    slow = SlowSink("slow", delay=0.004)
    fast = MemorySink("fast")
    fast.write = lambda chunk: None  # type: ignore[method-assign]  # discard, keep calls
    options = PipelineOptions(compression="none", encryption_key=KEY)

    tracemalloc.start()
    try:
        started = time.monotonic()
        result = run_pipeline(source, [slow, fast], options)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.bytes_in == size and result.committed == ["slow", "fast"]
    assert slow.digest.hexdigest() == result.sha256
    # Queues: 8 raw + 8 per sink, chunks of 1-2 MiB, plus chunks in flight.
    assert peak < 64 << 20, f"peak {peak / 2**20:.0f} MiB"
    # The slow sink set the pace (~300 writes of 4 ms), not the source.
    assert elapsed >= 300 * 0.004


# --- container --------------------------------------------------------------------------------


MEMBERS = [
    ("db/app.dump", text_bytes(3 << 20, seed=2)),
    ("db/empty.dump", b""),
    ("db/tiny.sql", b"x"),
    ("files.tar", os.urandom(100_000)),
]


def test_it_round_trips_a_container():
    out = io.BytesIO()
    writer = ContainerWriter(out)
    sizes = [writer.add_member(name, io.BytesIO(data)) for name, data in MEMBERS]
    writer.close()
    out.seek(0)

    read = [(name, member.read()) for name, member in iter_container(out)]

    assert sizes == [len(data) for _, data in MEMBERS]
    assert read == MEMBERS


def test_it_skips_the_unread_rest_of_a_member():
    out = io.BytesIO()
    writer = ContainerWriter(out)
    for name, data in MEMBERS:
        writer.add_member(name, io.BytesIO(data))
    writer.close()
    out.seek(0)

    heads = [(name, member.read(10)) for name, member in iter_container(out)]

    assert heads == [(name, data[:10]) for name, data in MEMBERS]


def test_it_streams_a_container_through_the_pipeline():
    openers = [(name, lambda data=data: io.BytesIO(data)) for name, data in MEMBERS]
    sink = MemorySink("a")
    options = PipelineOptions(encryption_key=KEY, key_id="k1")

    with container_source(openers) as source:
        run_pipeline(source, [sink], options)

    with open_artifact(io.BytesIO(bytes(sink.buffer)), key_for=lambda _: KEY) as plain:
        assert [(n, m.read()) for n, m in iter_container(plain)] == MEMBERS
    assert pipeline_threads() == []


def test_it_fails_the_pipeline_when_a_container_member_fails():
    def failing() -> BinaryIO:
        raise RuntimeError("mysqldump: access denied")

    openers = [("ok", lambda: io.BytesIO(b"abc")), ("bad", failing)]
    sink = MemorySink("a")

    with container_source(openers) as source, pytest.raises(PipelineError, match="access denied"):
        run_pipeline(source, [sink])

    assert sink.aborted
    assert pipeline_threads() == []


def test_it_detects_a_truncated_container():
    out = io.BytesIO()
    writer = ContainerWriter(out)
    writer.add_member("a", io.BytesIO(b"hello"))
    writer.add_member("b", io.BytesIO(b"world"))
    writer.close()

    for cut in (1, 5, 12, len(out.getvalue()) - 3):
        with pytest.raises(ArtifactCorrupt):
            for _, member in iter_container(io.BytesIO(out.getvalue()[:-cut])):
                member.read()


def test_it_fails_the_container_when_a_member_stream_fails_on_close():
    class DumpStdout(io.BytesIO):
        def close(self) -> None:
            super().close()
            raise RuntimeError("pg_dump exited with status 1")

    sink = MemorySink("a")

    with container_source([("db", lambda: DumpStdout(b"partial"))]) as source:
        with pytest.raises(PipelineError, match="status 1"):
            run_pipeline(source, [sink])

    assert sink.aborted and not sink.committed


def test_it_survives_a_sink_that_raises_in_abort():
    class Clumsy(MemorySink):
        def abort(self) -> None:
            raise OSError("cannot delete partial upload")

    good, clumsy = MemorySink("good"), Clumsy("clumsy", fail_after=0)

    result = run_pipeline(io.BytesIO(b"dump"), [good, clumsy])

    assert result.committed == ["good"]
    assert result.failed == {"clumsy": "clumsy: disk full"}


def test_it_rejects_a_key_that_is_not_256_bits():
    with pytest.raises(ValueError, match="32 bytes"):
        PipelineOptions(encryption_key=b"short")
