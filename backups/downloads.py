"""Downloading a backup: its artifact streamed from a destination, decrypted on the fly (the
dump as its compressor wrote it) or as the stored bytes, with the command that decrypts them.

Nothing is written to disk here. What is handed out is checked as it goes: an encrypted
artifact's chunks are authenticated before their bytes leave (``open_artifact``), and the
stored bytes are hashed on the way, the last piece held back until size and SHA-256 match
what the backup recorded. A copy that does not match ends the response early (an
incomplete download, which clients report as failed), never with a complete-looking file.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header

from backups.keys import artifact_keys
from backups.models import Backup, BackupKind, BackupStatus, CopyStatus, Encryption
from backups.pipeline import ArtifactCorrupt, open_artifact
from config.errors import Conflict
from destinations.backends import backend_for
from destinations.storage import ArtifactMissing, open_artifact_stream

logger = logging.getLogger(__name__)

CHUNK = 1 << 20

# What the plaintext of each kind of backup is, by engine where it matters.
_PLAIN_EXTENSIONS = {
    "postgresql": ".dump",  # pg_dump's custom format: pg_restore reads it
    "mysql": ".sql",
    "mariadb": ".sql",
    "sqlite": ".sqlite3",
    "mongodb": ".archive",
}
_COMPRESSED = {"zstd": ".zst", "gzip": ".gz"}


@dataclass
class Download:
    """An open download: ``chunks()`` yields its bytes, once."""

    backup: Backup
    filename: str
    raw: bool
    size: int | None  # known for the stored bytes; a decrypted stream's is not
    stream: BinaryIO = field(repr=False)
    stored: _HashingReader = field(repr=False)
    decrypt_hint: str = ""

    def chunks(self) -> Iterator[bytes]:
        """The bytes, the last piece only once the stored artifact checked out."""
        try:
            held = b""
            while piece := self.stream.read(CHUNK):
                if held:
                    yield held
                held = piece
            self.stored.drain()
            self.stored.check(self.backup)
            if held:
                yield held
        except (ArtifactCorrupt, ValueError) as exc:
            # Headers are gone: ending the body early is the only way left to say it.
            logger.error("download of backup %s stopped: %s", self.backup.name, exc)
            raise
        finally:
            self.close()

    def close(self) -> None:
        self.stored.close()


class _HashingReader:
    """Reads a stored artifact, hashing and counting every byte that passes."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._digest.update(data)
        self.size += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read what the layers above left (an age or envelope reader stops at its last
        chunk), so the whole artifact is hashed."""
        while self.read(CHUNK):
            pass

    def check(self, backup: Backup) -> None:
        if self.size != backup.size or self._digest.hexdigest() != backup.checksum_sha256:
            raise ArtifactCorrupt(
                f"the stored copy does not match the backup (size {self.size}, recorded "
                f"{backup.size}; checksum {self._digest.hexdigest()[:12]}…, recorded "
                f"{(backup.checksum_sha256 or '')[:12]}…)"
            )

    def close(self) -> None:
        self._stream.close()


def _filename(backup: Backup, *, raw: bool) -> str:
    if backup.kind in (BackupKind.FILESYSTEM, BackupKind.BASE):
        plain = ".tar"
    elif backup.kind == BackupKind.FULL:
        plain = ".sbx"  # Strongbox's container of several members
    else:
        plain = _PLAIN_EXTENSIONS.get(backup.engine, ".dump")
    name = backup.name + plain + _COMPRESSED.get(backup.compression, "")
    if raw and backup.encryption == Encryption.AGE:
        return name + ".age"
    if raw and backup.encryption == Encryption.AES_256_GCM:
        return name + ".sbxenc"
    return name


def _decrypt_hint(backup: Backup, filename: str) -> str:
    """How to get the dump out of the stored bytes, for the raw download."""
    plain = filename.removesuffix(".age").removesuffix(".sbxenc")
    if backup.encryption == Encryption.AGE:
        return f"age --decrypt -i <your age identity file> -o {plain} {filename}"
    if backup.encryption == Encryption.AES_256_GCM:
        return (
            "AES-256-GCM under a key derived from the master key: no standalone tool reads it; "
            "download it without raw=1 to have Strongbox decrypt it"
        )
    return ""


def backup_download_open(*, backup: Backup, raw: bool = False) -> Download:
    """Open the first stored copy of a completed backup for download (see the module)."""
    if backup.status != BackupStatus.COMPLETED:
        raise Conflict(
            f"Only a completed backup can be downloaded; {backup.name} is {backup.status}."
        )
    copies = backup.copies.select_related("destination").filter(status=CopyStatus.STORED)
    problems = []
    for copy in copies.order_by("created_at"):
        try:
            stored = _HashingReader(open_artifact_stream(backend_for(copy.destination), copy.key))
        except ArtifactMissing:
            problems.append(f"{copy.destination.name}: the artifact is missing")
            continue
        except Exception as exc:  # noqa: BLE001 - an unreachable destination and the like
            problems.append(f"{copy.destination.name}: could not be read ({exc})")
            continue
        filename = _filename(backup, raw=raw)
        if raw:
            stream: BinaryIO = stored  # type: ignore[assignment]
        else:
            try:
                stream = open_artifact(
                    stored,  # type: ignore[arg-type]
                    **artifact_keys(backup.organisation, backup.key_id),
                    decompress=False,
                )
            except Exception as exc:
                stored.close()
                raise Conflict(f"{backup.name} cannot be decrypted here: {exc}") from exc
        return Download(
            backup=backup,
            filename=filename,
            raw=raw,
            size=backup.size if raw else None,
            decrypt_hint=_decrypt_hint(backup, filename) if raw else "",
            stream=stream,
            stored=stored,
        )
    problems = problems or ["no stored copy of this backup is left"]
    raise Conflict(f"{backup.name} cannot be downloaded: {'; '.join(problems)}.")


def download_response(download: Download) -> StreamingHttpResponse:
    """The HTTP answer of a download, for the API and the backup page alike."""
    backup = download.backup
    response = StreamingHttpResponse(download.chunks(), content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=download.filename
    )
    if download.size is not None:
        response["Content-Length"] = str(download.size)
    response["X-Strongbox-SHA256"] = backup.checksum_sha256 or ""
    response["X-Strongbox-Encryption"] = backup.encryption
    if download.decrypt_hint:
        response["X-Strongbox-Decrypt"] = download.decrypt_hint
    response["Cache-Control"] = "no-store"
    return response
