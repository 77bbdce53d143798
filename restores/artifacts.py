"""Reading a backup's artifact for a restore: fetch a stored copy, verify its size, checksum
and key, and report bytes read (and the heartbeat) on the restore row."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.utils import timezone

from backups.keys import KeyUnavailable, key_for_id
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
    """A verified artifact on local disk (the destination's own file, or a downloaded copy)."""

    copy: BackupCopy
    path: str
    temporary: bool = False

    def open(self) -> BinaryIO:
        return open(self.path, "rb")  # noqa: SIM115 - the caller closes it

    def cleanup(self) -> None:
        if self.temporary:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def tmp_dir() -> str:
    path = str(settings.STRONGBOX_TMP_DIR)
    os.makedirs(path, exist_ok=True)
    return path


def hash_into(stream: BinaryIO, progress: Progress, out: BinaryIO | None) -> tuple[str, int]:
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
    """Hash a stored copy; a remote one is downloaded once, to a temporary file, meanwhile."""
    storage = backend_for(copy.destination).storage()
    if isinstance(storage, FileSystemStorage):
        path = storage.path(copy.key)
        try:
            with open(path, "rb") as stream:
                digest, size = hash_into(stream, progress, None)
        except FileNotFoundError as exc:
            raise ArtifactMissing(f"{copy.key} is missing from {copy.destination.name}") from exc
        return Fetched(copy=copy, path=path), digest, size
    fd, path = tempfile.mkstemp(prefix="strongbox-fetch-", dir=tmp_dir())
    fetched = Fetched(copy=copy, path=path, temporary=True)
    try:
        with os.fdopen(fd, "wb") as out, open_artifact_stream(copy.destination, copy.key) as raw:
            digest, size = hash_into(raw, progress, out)
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
                open_artifact(raw, key_for=key_for_id).read(1)
        except (ArtifactCorrupt, KeyUnavailable) as exc:
            fetched.cleanup()
            problems.append(f"{name}: cannot be decrypted ({exc})")
            continue
        return fetched, problems
    if not problems:
        problems.append("no stored copy of this backup is left")
    return None, problems
