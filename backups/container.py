"""Multi-member container: several streams of unknown size in one artifact.

Used by "full" backups (several database dumps plus a tar of files). tar needs each size up
front, so members are written as length-prefixed chunks instead. No Django imports.

Format (integers big-endian)::

    container = b"SBXC1\\n" member* b"E" u32 member_count
    member    = b"M" u16 name_len name(UTF-8) chunk* u32 0 u64 member_size
    chunk     = u32 length (> 0) data

The zero-length chunk ends a member; the trailing size and member count catch a writer that
stopped half-way (the pipeline's hash and the encryption envelope cover the bytes themselves).
"""

from __future__ import annotations

import io
import os
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

from backups.chunked import read_exact
from backups.envelope import ArtifactCorrupt

CONTAINER_MAGIC = b"SBXC1\n"
_MEMBER = b"M"
_END = b"E"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_COPY_SIZE = 1 << 20


class ContainerWriter:
    """Writes members one after another to a binary writable."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._count = 0
        self._closed = False
        out.write(CONTAINER_MAGIC)

    def add_member(self, name: str, source: BinaryIO) -> int:
        """Copy source to its end as the next member; returns the member's size in bytes."""
        if self._closed:
            raise ValueError("container is closed")
        name_bytes = name.encode()
        if len(name_bytes) > 0xFFFF:
            raise ValueError("member name too long")
        out = self._out
        out.write(_MEMBER + _U16.pack(len(name_bytes)) + name_bytes)
        size = 0
        while True:
            data = source.read(_COPY_SIZE)
            if not data:
                break
            out.write(_U32.pack(len(data)))
            out.write(data)
            size += len(data)
        out.write(_U32.pack(0) + _U64.pack(size))
        self._count += 1
        return size

    def close(self) -> None:
        """Write the end marker. Does not close the underlying stream."""
        if not self._closed:
            self._out.write(_END + _U32.pack(self._count))
            self._out.flush()
            self._closed = True


class _MemberReader(io.RawIOBase):
    """One member's bytes; reads the chunk framing from the shared container stream."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream
        self._remaining = 0  # bytes left in the current chunk
        self._size = 0
        self.finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.finished or not len(buffer):
            return 0
        if self._remaining == 0:
            raw = read_exact(self._stream, _U32.size)
            if len(raw) != _U32.size:
                raise ArtifactCorrupt("container truncated inside a member")
            self._remaining = _U32.unpack(raw)[0]
            if self._remaining == 0:
                raw_size = read_exact(self._stream, _U64.size)
                if len(raw_size) != _U64.size or _U64.unpack(raw_size)[0] != self._size:
                    raise ArtifactCorrupt("container member size mismatch")
                self.finished = True
                return 0
        data = self._stream.read(min(len(buffer), self._remaining))
        if not data:
            raise ArtifactCorrupt("container truncated inside a member")
        n = len(data)
        buffer[:n] = data
        self._remaining -= n
        self._size += n
        return n

    def skip_rest(self) -> None:
        while self.readinto(bytearray(_COPY_SIZE)):
            pass


def iter_container(stream: BinaryIO) -> Iterator[tuple[str, BinaryIO]]:
    """Yield (name, readable) per member, in order. Unread member bytes are skipped on advance."""
    if read_exact(stream, len(CONTAINER_MAGIC)) != CONTAINER_MAGIC:
        raise ArtifactCorrupt("not a container (bad magic)")
    count = 0
    while True:
        kind = read_exact(stream, 1)
        if kind == _END:
            raw = read_exact(stream, _U32.size)
            if len(raw) != _U32.size or _U32.unpack(raw)[0] != count:
                raise ArtifactCorrupt("container member count mismatch")
            if stream.read(1):
                raise ArtifactCorrupt("data after container end")
            return
        if kind != _MEMBER:
            raise ArtifactCorrupt("container truncated or malformed (no end marker)")
        raw = read_exact(stream, _U16.size)
        if len(raw) != _U16.size:
            raise ArtifactCorrupt("container truncated in a member header")
        name_bytes = read_exact(stream, _U16.unpack(raw)[0])
        try:
            name = name_bytes.decode()
        except UnicodeDecodeError as exc:
            raise ArtifactCorrupt("container member name is not UTF-8") from exc
        member = _MemberReader(stream)
        yield name, io.BufferedReader(member, _COPY_SIZE)  # type: ignore[misc]
        member.skip_rest()
        count += 1


class _ContainerSource(io.RawIOBase):
    """Read end of the pipe a writer thread fills; re-raises the writer's error at EOF."""

    def __init__(self, members: Sequence[tuple[str, Callable[[], BinaryIO]]]) -> None:
        super().__init__()
        read_fd, write_fd = os.pipe()
        self._fd = read_fd
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._write, args=(members, write_fd), name="container-writer", daemon=True
        )
        self._thread.start()

    def _write(self, members: Sequence[tuple[str, Callable[[], BinaryIO]]], fd: int) -> None:
        try:
            with open(fd, "wb", buffering=_COPY_SIZE) as out:
                writer = ContainerWriter(out)
                for name, opener in members:
                    source = opener()
                    try:
                        writer.add_member(name, source)
                    finally:
                        # close() may raise, e.g. a wrapper that checks the dump's exit status.
                        source.close()
                writer.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._error = exc

    def fileno(self) -> int:
        return self._fd

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = os.readv(self._fd, [buffer])
        if n == 0:
            # EOF: the writer is done or died; don't let a half-written container look complete.
            self._thread.join()
            if self._error is not None:
                raise self._error
        return n

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)  # a writer blocked on the pipe now gets BrokenPipeError
            self._thread.join()
        super().close()


def container_source(members: Sequence[tuple[str, Callable[[], BinaryIO]]]) -> BinaryIO:
    """The container of members as a readable stream, suitable as run_pipeline's source.

    Each opener is called in turn on a writer thread, its stream copied to EOF and closed.
    An error in an opener, a read or a close makes the returned stream raise once the bytes
    written so far are consumed. Close the returned stream when done: that stops and joins
    the writer thread (a member stream blocked in read() must be unblocked by its owner).
    """
    return io.BufferedReader(_ContainerSource(members), _COPY_SIZE)  # type: ignore[return-value]
