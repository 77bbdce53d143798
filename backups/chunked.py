"""Django-free reading helpers shared by the artifact formats (``envelope.py``,
``age_format.py``, ``container.py``): exact reads, and the readable side of a stream of
authenticated chunks."""

from __future__ import annotations

import io
from typing import BinaryIO


def read_exact(stream: BinaryIO, n: int) -> bytes:
    """Read exactly n bytes, or fewer only at end of stream."""
    parts = []
    while n > 0:
        part = stream.read(n)
        if not part:
            break
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


class ChunkedPlaintextReader(io.RawIOBase):
    """Readable plaintext of a stream of authenticated chunks. A subclass opens one chunk at a
    time in ``_open_next`` (authenticate, then return its plaintext and whether it is the
    final one); bytes are handed out only from a chunk that was opened, so a reader never
    sees plaintext that failed authentication, and memory stays at one chunk."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = memoryview(b"")
        self._done = False

    def _open_next(self) -> tuple[bytes, bool]:
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer and not self._done:
            plaintext, self._done = self._open_next()
            self._buffer = memoryview(plaintext)
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n
