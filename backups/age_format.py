"""age v1 artifacts (https://age-encryption.org/v1): X25519 recipients, streamed. No Django.

An artifact encrypted here decrypts with the stock tool (``age -d -i key.txt artifact``) and
with pyrage, and theirs decrypt here (tests/backups/test_age_encryption.py holds all three to
each other). Written on ``cryptography`` rather than pyrage because the pipeline pushes
compressed chunks and pulls sealed ones on its own thread, while pyrage's streaming calls take
a whole reader and writer and run to the end; and because re-wrapping needs the header alone,
which pyrage does not expose. The format:

    age-encryption.org/v1
    -> X25519 <base64 ephemeral share>          one stanza per recipient
    <base64 file key wrapped for that recipient>
    --- <base64 HMAC-SHA256 of the header up to "---", under HKDF(file key, "header")>
    16-byte nonce, then ChaCha20-Poly1305 chunks of 64 KiB plaintext (the last one shorter or
    full), nonce = 11-byte big-endian counter || 1 on the last chunk else 0, under
    HKDF(file key, salt=nonce, "payload")

The 16-byte file key is the only secret; each stanza wraps it for one recipient, so
re-wrapping (backups/rewrap.py) rewrites the header for other recipients with ``header_for``
and copies the payload unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backups.chunked import ChunkedPlaintextReader, read_exact

AGE_MAGIC = b"age-encryption.org/v1\n"
CHUNK = 64 << 10
TAG = 16
FILE_KEY_SIZE = 16
NONCE_SIZE = 16
RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"
_X25519_LABEL = b"age-encryption.org/v1/X25519"
_COLUMNS = 64
_MAX_HEADER = 1 << 20  # a header past this is not one we wrote: treated as corruption
_ZERO_NONCE = bytes(12)


class AgeError(Exception):
    """A malformed, tampered or undecryptable age artifact."""


class AgeKeyError(ValueError):
    """A recipient or identity that is not a well-formed age X25519 key."""


class AgeNoIdentity(AgeError):
    """None of the identities given unwraps the artifact's file key."""


# --- keys (Bech32, BIP 173, without its 90-character limit, as age uses it) ---------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: Iterable[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            checksum ^= _GENERATOR[i] if (top >> i) & 1 else 0
    return checksum


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: Iterable[int], from_bits: int, to_bits: int, *, pad: bool) -> list[int]:
    acc = bits = 0
    out = []
    for value in data:
        acc = acc << from_bits | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append(acc >> bits & (1 << to_bits) - 1)
    if pad and bits:
        out.append(acc << (to_bits - bits) & (1 << to_bits) - 1)
    elif not pad and (bits >= from_bits or acc << (to_bits - bits) & (1 << to_bits) - 1):
        raise AgeKeyError("bad padding")
    return out


def bech32_encode(hrp: str, data: bytes) -> str:
    words = _convert_bits(data, 8, 5, pad=True)
    checksum = _polymod([*_hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    words += [checksum >> 5 * (5 - i) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[w] for w in words)


def bech32_decode(text: str, hrp: str) -> bytes:
    if text.lower() != text and text.upper() != text:
        raise AgeKeyError("mixed case")
    text = text.lower()
    head, separator, tail = text.rpartition("1")
    if not separator or head != hrp or len(tail) < 6:
        raise AgeKeyError(f"does not start with {hrp}1")
    try:
        words = [_CHARSET.index(c) for c in tail]
    except ValueError as exc:
        raise AgeKeyError("a character outside Bech32's alphabet") from exc
    if _polymod([*_hrp_expand(hrp), *words]) != 1:
        raise AgeKeyError("bad checksum")
    return bytes(_convert_bits(words[:-6], 5, 8, pad=False))


def parse_recipient(text: str) -> X25519PublicKey:
    """An ``age1…`` recipient, or AgeKeyError saying what is wrong with it."""
    try:
        raw = bech32_decode(text.strip(), RECIPIENT_HRP)
    except AgeKeyError as exc:
        raise AgeKeyError(f"{_shown(text)} is not an age X25519 recipient (age1…): {exc}") from None
    if len(raw) != 32:
        raise AgeKeyError(f"{_shown(text)} is not an age X25519 recipient: wrong length")
    return X25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class Identity:
    """An ``AGE-SECRET-KEY-1…`` identity; its repr never shows the key."""

    key: X25519PrivateKey
    recipient: str  # the matching age1… public key

    def __repr__(self) -> str:
        return f"Identity(recipient={self.recipient!r})"


def parse_identity(text: str) -> Identity:
    try:
        raw = bech32_decode(text.strip(), IDENTITY_HRP)
    except AgeKeyError as exc:
        raise AgeKeyError(f"not an age X25519 identity (AGE-SECRET-KEY-1…): {exc}") from None
    if len(raw) != 32:
        raise AgeKeyError("not an age X25519 identity: wrong length")
    key = X25519PrivateKey.from_private_bytes(raw)
    return Identity(
        key=key, recipient=bech32_encode(RECIPIENT_HRP, key.public_key().public_bytes_raw())
    )


def parse_identities(text: str) -> list[Identity]:
    """An identity file as age-keygen writes it: one key a line, ``#`` comments."""
    identities = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(parse_identity(line))
        except AgeKeyError as exc:
            raise AgeKeyError(f"line {number}: {exc}") from None
    return identities


def generate_identity() -> Identity:
    return parse_identity(
        bech32_encode(IDENTITY_HRP, X25519PrivateKey.generate().private_bytes_raw()).upper()
    )


def identity_text(identity: Identity) -> str:
    """The identity as ``age-keygen`` writes it."""
    raw = identity.key.private_bytes_raw()
    return f"# public key: {identity.recipient}\n{bech32_encode(IDENTITY_HRP, raw).upper()}\n"


def recipient_fingerprint(recipient: str) -> str:
    """12 hex digits naming a recipient: ``printf %s age1… | sha256sum | cut -c1-12``."""
    return hashlib.sha256(recipient.strip().encode()).hexdigest()[:12]


def _shown(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= 70 else text[:67] + "...")


# --- header ----------------------------------------------------------------------------------


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    """age's base64: standard alphabet, no padding, canonical."""
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise AgeError("bad base64 in the header") from exc
    if _b64(data) != text:
        raise AgeError("non-canonical base64 in the header")
    return data


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _x25519_stanza(file_key: bytes, recipient: X25519PublicKey) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(recipient)
    wrap_key = _hkdf(shared, share + recipient.public_bytes_raw(), _X25519_LABEL)
    body = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)
    return b"-> X25519 " + _b64(share) + b"\n" + _b64(body) + b"\n"


def header_for(file_key: bytes, recipients: Sequence[X25519PublicKey]) -> bytes:
    if not recipients:
        raise ValueError("age needs at least one recipient")
    head = AGE_MAGIC + b"".join(_x25519_stanza(file_key, r) for r in recipients) + b"---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), head, hashlib.sha256).digest()
    return head + b" " + _b64(mac) + b"\n"


@dataclass
class _Stanza:
    kind: bytes
    args: list[bytes]
    body: bytes


def _read_line(stream: BinaryIO, budget: list[int]) -> bytes:
    line = stream.readline(min(budget[0], 4096))  # type: ignore[call-arg]
    budget[0] -= len(line)
    if not line.endswith(b"\n"):
        raise AgeError("truncated or oversized age header")
    return line[:-1]


def read_header(stream: BinaryIO) -> tuple[bytes, list[_Stanza], bytes]:
    """(the header bytes the MAC covers, its stanzas, the MAC); stream must have readline
    and is left at the payload's nonce."""
    budget = [_MAX_HEADER]
    if _read_line(stream, budget) + b"\n" != AGE_MAGIC:
        raise AgeError("not an age v1 artifact")
    covered = bytearray(AGE_MAGIC)
    stanzas = []
    line = _read_line(stream, budget)
    while line.startswith(b"-> "):
        covered += line + b"\n"
        kind, *args = line[3:].split(b" ")
        if not kind or any(not arg for arg in [kind, *args]):
            raise AgeError("malformed stanza in the age header")
        body = bytearray()
        while True:
            part = _read_line(stream, budget)
            covered += part + b"\n"
            if len(part) > _COLUMNS:
                raise AgeError("overlong stanza line in the age header")
            body += part
            if len(part) < _COLUMNS:
                break
        stanzas.append(_Stanza(kind, args, _unb64(bytes(body))))
        line = _read_line(stream, budget)
    if not line.startswith(b"--- "):
        raise AgeError("malformed age header (no MAC line)")
    covered += b"---"
    mac = _unb64(line[4:])
    if not stanzas:
        raise AgeError("age header has no recipient stanza")
    return bytes(covered), stanzas, mac


def _unwrap(stanzas: list[_Stanza], identities: Sequence[Identity]) -> bytes:
    x25519 = [s for s in stanzas if s.kind == b"X25519"]
    for stanza in x25519:
        if len(stanza.args) != 1 or len(stanza.body) != FILE_KEY_SIZE + TAG:
            raise AgeError("malformed X25519 stanza")
        share = _unb64(stanza.args[0])
        if len(share) != 32:
            raise AgeError("malformed X25519 stanza")
    for identity in identities:
        ours = identity.key.public_key().public_bytes_raw()
        for stanza in x25519:
            share = _unb64(stanza.args[0])
            try:
                shared = identity.key.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError as exc:  # an all-zero shared secret: a low-order share
                raise AgeError("X25519 stanza with a low-order share") from exc
            wrap_key = _hkdf(shared, share + ours, _X25519_LABEL)
            try:
                return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, stanza.body, None)
            except InvalidTag:
                continue
    kinds = sorted({s.kind.decode(errors="replace") for s in stanzas})
    raise AgeNoIdentity(
        f"none of the {len(identities)} age identities given opens this artifact "
        f"({len(stanzas)} recipient stanza(s), {', '.join(kinds)})"
    )


def open_file_key(stream: BinaryIO, identities: Sequence[Identity]) -> tuple[bytes, bytes]:
    """(file key, header bytes) after checking the header's MAC; stream is left at the
    payload."""
    covered, stanzas, mac = read_header(stream)
    file_key = _unwrap(stanzas, identities)
    expected = hmac.new(_hkdf(file_key, b"", b"header"), covered, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, mac):
        raise AgeError("the age header's MAC does not match (tampered header)")
    return file_key, covered + b" " + _b64(mac) + b"\n"


# --- payload ---------------------------------------------------------------------------------


def _chunk_nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class AgeWriter:
    """Turns plaintext into an age artifact; the same interface as envelope.EnvelopeWriter:
    ``header`` first, then ``seal`` of exactly ``chunk_size`` bytes (a multiple of 64 KiB,
    so every STREAM chunk inside it is full) until the final, shorter or full, one."""

    def __init__(self, recipients: Sequence[str], chunk_size: int = 1 << 20) -> None:
        if chunk_size <= 0 or chunk_size % CHUNK:
            raise ValueError(f"chunk_size must be a positive multiple of {CHUNK}")
        file_key = os.urandom(FILE_KEY_SIZE)
        nonce = os.urandom(NONCE_SIZE)
        self.header = header_for(file_key, [parse_recipient(r) for r in recipients]) + nonce
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self.chunk_size = chunk_size
        self._index = 0
        self._finished = False

    def seal(self, plaintext: bytes, *, final: bool) -> bytes:
        if self._finished:
            raise ValueError("age artifact already finished")
        if not final and len(plaintext) != self.chunk_size:
            raise ValueError("only the final seal may be shorter than chunk_size")
        if final and not plaintext and self._index:
            raise ValueError("age allows an empty final chunk only in an empty payload")
        view = memoryview(plaintext)
        count = max(1, -(-len(plaintext) // CHUNK))
        encrypt = self._aead.encrypt
        parts = []
        for i in range(count):
            last = final and i == count - 1
            parts.append(
                encrypt(_chunk_nonce(self._index, last), view[i * CHUNK : (i + 1) * CHUNK], None)
            )
            self._index += 1
        self._finished = final
        return b"".join(parts)


class AgeReader(ChunkedPlaintextReader):
    """Readable plaintext of an age artifact; every chunk is authenticated before its bytes
    are returned, truncation and appended data are errors (AgeError)."""

    def __init__(
        self, stream: BinaryIO, identities: Sequence[Identity] | Callable[[], Sequence[Identity]]
    ) -> None:
        super().__init__()
        buffered = stream if hasattr(stream, "peek") else io.BufferedReader(stream)  # type: ignore[arg-type]
        self._stream = buffered
        # A callable is asked only now, once the stream is known to be age: it may raise to
        # say that no identity is configured at all.
        found = identities() if callable(identities) else identities
        file_key, self.header = open_file_key(buffered, list(found))  # type: ignore[arg-type]
        nonce = read_exact(buffered, NONCE_SIZE)
        if len(nonce) != NONCE_SIZE:
            raise AgeError("truncated age payload (no nonce)")
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._index = 0
        self._next = read_exact(buffered, CHUNK + TAG)

    def _open_next(self) -> tuple[bytes, bool]:
        frame = self._next
        if len(frame) < TAG:
            raise AgeError("truncated age payload")
        self._next = read_exact(self._stream, CHUNK + TAG) if len(frame) == CHUNK + TAG else b""
        last = not self._next
        try:
            plaintext = self._aead.decrypt(_chunk_nonce(self._index, last), frame, None)
        except InvalidTag:
            raise AgeError(
                f"age chunk {self._index} failed authentication (tampered, reordered or "
                "truncated artifact)"
            ) from None
        if last and not plaintext and self._index:
            raise AgeError("age payload ends with an empty chunk")
        self._index += 1
        return plaintext, last
