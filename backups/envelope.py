"""Authenticated encryption envelope for backup artifacts (AES-256-GCM, STREAM construction).

No Django imports: the pipeline is tested and benchmarked on plain streams.

Format (all integers big-endian)::

    header  = b"SBXE1"                  magic and format version
              u16 key_id_len, key_id    UTF-8; lets the reader look the key up
              u32 chunk_size            plaintext bytes per chunk (the last may be shorter)
              8 bytes nonce_prefix      random per artifact
    chunk*  = u32 ct_len, ciphertext    ct_len = plaintext length + 16-byte GCM tag

    nonce(i)      = nonce_prefix || u32 i
    aad(i, final) = header || u64 i || u8 final      (final = 1 only on the last chunk)

Every artifact has at least one chunk, and exactly the last one is sealed with final = 1.
Binding the whole header into every chunk's AAD detects a swapped key id or nonce; the index
detects reordered or dropped chunks; the final flag detects truncation at a chunk boundary
and appended data. The reader cannot tell a wrong key from tampering (GCM is not key
committing), so both surface as ArtifactCorrupt. That is also how it chooses when the key
id names several candidate keys (artifacts from before key ids named their master key):
the first key under which the first chunk authenticates is the artifact's key.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backups.chunked import ChunkedPlaintextReader, read_exact

ENVELOPE_MAGIC = b"SBXE1"
KEY_SIZE = 32
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 8
# A chunk length above this is treated as corruption rather than allocated.
MAX_CHUNK_SIZE = 64 << 20
_MAX_CHUNKS = 1 << 32

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_AAD_TAIL = struct.Struct(">QB")


class ArtifactCorrupt(Exception):
    """The artifact failed authentication, is truncated or is not in the expected format."""


class EnvelopeWriter:
    """Turns plaintext into envelope bytes; the caller decides which chunk is final."""

    def __init__(self, key: bytes, key_id: str, chunk_size: int) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"encryption key must be {KEY_SIZE} bytes, got {len(key)}")
        if not 0 < chunk_size <= MAX_CHUNK_SIZE - TAG_SIZE:
            raise ValueError(f"chunk_size out of range: {chunk_size}")
        key_id_bytes = key_id.encode()
        self._aead = AESGCM(key)
        self._prefix = os.urandom(NONCE_PREFIX_SIZE)
        self.header = (
            ENVELOPE_MAGIC
            + _U16.pack(len(key_id_bytes))
            + key_id_bytes
            + _U32.pack(chunk_size)
            + self._prefix
        )
        self.chunk_size = chunk_size
        self._index = 0
        self._finished = False

    def seal(self, plaintext: bytes, *, final: bool) -> bytes:
        """Encrypt one chunk and return its framed bytes (length prefix included)."""
        if self._finished:
            raise ValueError("envelope already finished")
        if self._index >= _MAX_CHUNKS:
            raise ValueError("too many chunks for one envelope")
        nonce = self._prefix + _U32.pack(self._index)
        aad = self.header + _AAD_TAIL.pack(self._index, 1 if final else 0)
        ciphertext = self._aead.encrypt(nonce, plaintext, aad)
        self._index += 1
        self._finished = final
        return _U32.pack(len(ciphertext)) + ciphertext


class EnvelopeReader(ChunkedPlaintextReader):
    """Readable plaintext of an envelope; every chunk is authenticated before it is returned."""

    def __init__(
        self, stream: BinaryIO, key_for: Callable[[str], bytes | Sequence[bytes]] | None
    ) -> None:
        super().__init__()
        self._stream = stream
        magic = read_exact(stream, len(ENVELOPE_MAGIC))
        if magic != ENVELOPE_MAGIC:
            raise ArtifactCorrupt("not an encrypted artifact (bad magic)")
        raw_len = read_exact(stream, _U16.size)
        if len(raw_len) != _U16.size:
            raise ArtifactCorrupt("truncated envelope header")
        key_id_bytes = read_exact(stream, _U16.unpack(raw_len)[0])
        rest = read_exact(stream, _U32.size + NONCE_PREFIX_SIZE)
        if len(rest) != _U32.size + NONCE_PREFIX_SIZE:
            raise ArtifactCorrupt("truncated envelope header")
        self.header = magic + raw_len + key_id_bytes + rest
        try:
            self.key_id = key_id_bytes.decode()
        except UnicodeDecodeError as exc:
            raise ArtifactCorrupt("envelope key id is not UTF-8") from exc
        self._prefix = rest[_U32.size :]
        # The header is authenticated with the first chunk; until then this only bounds memory.
        self._max_frame = min(_U32.unpack(rest[: _U32.size])[0] + TAG_SIZE, MAX_CHUNK_SIZE)
        if key_for is None:
            raise ValueError(f"artifact is encrypted (key id {self.key_id!r}) but no key was given")
        found = key_for(self.key_id)
        keys = [found] if isinstance(found, bytes | bytearray) else list(found)
        if not keys or any(len(key) != KEY_SIZE for key in keys):
            raise ValueError(f"key for {self.key_id!r} must be {KEY_SIZE} bytes")
        # Several candidates: the first chunk decides which one it is (_open_next).
        self._candidates = [AESGCM(key) for key in keys]
        self._index = 0
        # One chunk of lookahead: a chunk is final exactly when nothing follows it.
        self._next = self._read_frame()
        if self._next is None:
            raise ArtifactCorrupt("envelope has no chunks (truncated)")

    def _read_frame(self) -> bytes | None:
        raw_len = read_exact(self._stream, _U32.size)
        if not raw_len:
            return None
        if len(raw_len) != _U32.size:
            raise ArtifactCorrupt("truncated chunk length")
        length = _U32.unpack(raw_len)[0]
        if not TAG_SIZE <= length <= self._max_frame:
            raise ArtifactCorrupt(f"implausible chunk length {length}")
        frame = read_exact(self._stream, length)
        if len(frame) != length:
            raise ArtifactCorrupt("truncated chunk")
        return frame

    def _open_next(self) -> tuple[bytes, bool]:
        frame = self._next
        if frame is None:  # unreachable: _done is set once the final chunk was opened
            raise ArtifactCorrupt("read past the final chunk")
        self._next = self._read_frame()
        final = self._next is None
        nonce = self._prefix + _U32.pack(self._index)
        aad = self.header + _AAD_TAIL.pack(self._index, 1 if final else 0)
        for aead in self._candidates:
            try:
                plaintext = aead.decrypt(nonce, frame, aad)
            except InvalidTag:
                continue
            self._candidates = [aead]
            break
        else:
            raise ArtifactCorrupt(
                f"chunk {self._index} failed authentication "
                "(wrong key, tampered, reordered or truncated artifact)"
            )
        self._index += 1
        return plaintext, final
