"""A temporary file that never holds plaintext: AES-256-GCM chunks under a key that exists
only in this process's memory, in a file no directory lists.

No Django imports. Used wherever a restore must keep bytes of a backup for a while (a
downloaded artifact, the head of a dump read twice): if the worker is killed, what stays on
disk (nothing, once the kernel drops the unlinked file) can never be read again.

- The file is opened with ``O_TMPFILE`` (never linked into the directory; where the file
  system cannot, it is created 0600 and unlinked at once), so a SIGKILL leaves no name behind.
- Writes are append-only and cut into fixed plaintext chunks; chunk ``i`` is sealed with
  ``nonce = u32 0 || u64 i`` under a fresh random key, so no nonce is ever used twice.
- Readers are seekable: a read decrypts the one chunk it falls in (and caches it), so a
  reader positioned anywhere costs one chunk of memory. Readers see what was written so
  far, including the unsealed tail still in memory.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHUNK_SIZE = 1 << 20
TAG_SIZE = 16
_NONCE = struct.Struct(">IQ")


def _open_unlinked(directory: str | None, prefix: str) -> int:
    directory = directory or tempfile.gettempdir()
    with contextlib.suppress(AttributeError, OSError):
        return os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600)
    fd, path = tempfile.mkstemp(prefix=prefix, dir=directory)  # 0600
    os.unlink(path)
    return fd


class EphemeralSpool:
    """An append-only encrypted spool; ``reader()`` reads it back from any position."""

    def __init__(
        self,
        directory: str | None = None,
        *,
        prefix: str = "strongbox-spool-",
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.chunk_size = chunk_size
        self._aead: AESGCM | None = AESGCM(AESGCM.generate_key(bit_length=256))
        self._fd = _open_unlinked(directory, prefix)
        self._sealed = 0  # chunks on disk
        self._tail = bytearray()  # plaintext not yet a whole chunk

    @property
    def size(self) -> int:
        """Plaintext bytes written so far."""
        return self._sealed * self.chunk_size + len(self._tail)

    def write(self, data: bytes) -> int:
        self._tail += data
        while len(self._tail) >= self.chunk_size:
            self._seal(bytes(self._tail[: self.chunk_size]))
            del self._tail[: self.chunk_size]
        return len(data)

    def reader(self, *, end: int | None = None) -> SpoolReader:
        """A seekable reader of the first ``end`` bytes (default: all, as they grow)."""
        return SpoolReader(self, end)

    def close(self) -> None:
        if self._aead is None:
            return
        self._aead = None  # the key goes with it: what is on disk is unreadable now
        self._tail = bytearray()
        os.close(self._fd)

    def __enter__(self) -> EphemeralSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- chunks ----------------------------------------------------------------------------

    def _seal(self, plain: bytes) -> None:
        sealed = self._cipher().encrypt(_NONCE.pack(0, self._sealed), plain, None)
        offset = self._sealed * (self.chunk_size + TAG_SIZE)
        view = memoryview(sealed)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written
        self._sealed += 1

    def chunk(self, index: int) -> bytes:
        """The plaintext of chunk ``index`` (the tail for the one being filled)."""
        cipher = self._cipher()
        if index == self._sealed:
            return bytes(self._tail)
        if not 0 <= index < self._sealed:
            return b""
        length = self.chunk_size + TAG_SIZE
        sealed = os.pread(self._fd, length, index * length)
        return cipher.decrypt(_NONCE.pack(0, index), sealed, None)

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            raise ValueError("the spool is closed")
        return self._aead


class SpoolReader(io.RawIOBase):
    """A seekable, read-only view of an EphemeralSpool."""

    def __init__(self, spool: EphemeralSpool, end: int | None) -> None:
        self._spool = spool
        self._end = end
        self._position = 0
        self._cached: tuple[int, bytes] = (-1, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _limit(self) -> int:
        return self._spool.size if self._end is None else min(self._end, self._spool.size)

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._limit()}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        limit = self._limit()
        if size is None or size < 0:
            size = limit - self._position
        size = min(size, limit - self._position)
        parts = []
        while size > 0:
            index, within = divmod(self._position, self._spool.chunk_size)
            if self._cached[0] != index or within + 1 > len(self._cached[1]):
                self._cached = (index, self._spool.chunk(index))
            piece = self._cached[1][within : within + size]
            if not piece:
                break
            parts.append(piece)
            self._position += len(piece)
            size -= len(piece)
        return b"".join(parts)

    def readall(self) -> bytes:
        return self.read(-1)


def spool_stream(stream: BinaryIO, spool: EphemeralSpool, chunk: int = CHUNK_SIZE) -> int:
    """Copy ``stream`` to its end into ``spool``; returns the bytes copied."""
    total = 0
    while data := stream.read(chunk):
        spool.write(data)
        total += len(data)
    return total
