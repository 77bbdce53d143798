"""Reading a backup's artifact for a restore: fetch a stored copy, verify its size, checksum
and key, and report bytes read (and the heartbeat) on the restore row."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.utils import timezone

from backups.ephemeral_spool import EphemeralSpool
from backups.keys import KeyUnavailable, artifact_keys
from backups.models import Backup, BackupCopy, CopyStatus
from backups.pipeline import ArtifactCorrupt, open_artifact
from destinations.backends import backend_for
from destinations.storage import ArtifactMissing, open_artifact_stream
from restores.models import Restore

PROGRESS_INTERVAL = 0.5


@dataclass
class Progress:
    """Bytes read and the heartbeat, written to the restore row at most every half second."""

    restore: Restore | None
    bytes_done: int = 0
    last_write: float = 0.0

    def add(self, n: int) -> None:
        self.bytes_done += n
        self.tick()

    def reset(self) -> None:
        self.bytes_done = 0
        self.tick(force=True)

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.restore is None or (not force and now - self.last_write < PROGRESS_INTERVAL):
            return
        self.last_write = now
        Restore.objects.filter(pk=self.restore.pk).update(
            bytes_done=self.bytes_done, heartbeat_at=timezone.now()
        )


class Counting:
    """A read-only wrapper that reports how many bytes went through."""

    def __init__(self, stream: BinaryIO, on_read: Callable[[int], None]) -> None:
        self._stream = stream
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if data:
            self._on_read(len(data))
        return data

    def readable(self) -> bool:
        return True


@dataclass
class Fetched:
    """A verified artifact: the destination's own file, or a download in an encrypted spool."""

    copy: BackupCopy
    path: str = ""
    spool: EphemeralSpool | None = None

    def open(self) -> BinaryIO:
        if self.spool is not None:
            return io.BufferedReader(self.spool.reader(), buffer_size=1 << 20)
        return open(self.path, "rb")  # noqa: SIM115 - the caller closes it

    def cleanup(self) -> None:
        if self.spool is not None:
            self.spool.close()


def tmp_dir() -> str:
    path = str(settings.STRONGBOX_TMP_DIR)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def restore_job(restore_id) -> str:
    """The name of a restore's private directory in the temporary directory (``workdirs``)."""
    return f"restore-{restore_id.hex}"


def hash_into(stream: BinaryIO, progress: Progress, out: EphemeralSpool | None) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while data := stream.read(1 << 20):
        digest.update(data)
        size += len(data)
        if out is not None:
            out.write(data)
        progress.add(len(data))
    return digest.hexdigest(), size


def fetch(copy: BackupCopy, progress: Progress) -> tuple[Fetched, str, int]:
    """Hash a stored copy; a remote one is downloaded once meanwhile, into an encrypted spool
    (an unencrypted backup's bytes are the database's: they never reach the disk as they are).
    """
    backend = backend_for(copy.destination)
    path = backend.artifact_path(copy.key)
    if path is not None:
        # A file on this machine is read again where it is: nothing to download.
        with open_artifact_stream(backend, copy.key) as stream:
            digest, size = hash_into(stream, progress, None)
        return Fetched(copy=copy, path=str(path)), digest, size
    fetched = Fetched(copy=copy, spool=EphemeralSpool(tmp_dir(), prefix="strongbox-fetch-"))
    try:
        with open_artifact_stream(backend, copy.key) as raw:
            digest, size = hash_into(raw, progress, fetched.spool)
    except BaseException:
        fetched.cleanup()
        raise
    return fetched, digest, size


def fetch_verified(backup: Backup, progress: Progress) -> tuple[Fetched | None, list[str]]:
    """The first stored copy whose size, checksum and key check out, and the problems seen."""
    problems = []
    copies = backup.copies.select_related("destination").filter(status=CopyStatus.STORED)
    for copy in copies.order_by("created_at"):
        progress.reset()
        name = copy.destination.name
        try:
            fetched, digest, size = fetch(copy, progress)
        except ArtifactMissing:
            problems.append(f"{name}: the artifact is missing")
            continue
        except Exception as exc:  # noqa: BLE001 - an unreachable destination and the like
            problems.append(f"{name}: could not be read ({exc})")
            continue
        if size != backup.size or digest != backup.checksum_sha256:
            fetched.cleanup()
            problems.append(
                f"{name}: size {size} / checksum {digest[:12]}… do not match the recorded "
                f"{backup.size} / {backup.checksum_sha256[:12]}…"
            )
            continue
        try:
            with fetched.open() as raw:
                open_artifact(raw, **artifact_keys(backup.organisation, backup.key_id)).read(1)
        except (ArtifactCorrupt, KeyUnavailable) as exc:
            fetched.cleanup()
            problems.append(f"{name}: cannot be decrypted ({exc})")
            continue
        return fetched, problems
    if not problems:
        problems.append("no stored copy of this backup is left")
    return None, problems
