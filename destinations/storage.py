"""Artifact I/O on destinations: streaming writes (pipeline sinks), reads, stats, deletes.

Each call takes the destination's backend (``destinations.backends``), built once per
operation, and asks it: the backend answers through its django-storages Storage, so local
disk and S3 share one code path with production, and does what its kind does its own way
(where a local artifact lives, S3's streamed reads and multipart uploads). Writes never
leave a partial artifact under the final key: local writes go to a temporary name renamed
on commit; S3 multipart uploads only become visible when completed and are aborted on
failure.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from django.core.files import File

if TYPE_CHECKING:
    from datetime import datetime

    from destinations.backends.base import DestinationBackend

_EOF = object()


class ArtifactMissing(Exception):
    pass


class DestinationNotAnswering(OSError):
    """The store did not answer a call within its timeouts and retries; the message names
    the endpoint and what it did (refused, accepted the connection but stayed silent)."""


class LocalSink:
    """Writes to ``<key>.partial-<id>``; commit fsyncs and renames it into place (over an
    existing artifact only when ``replace``: re-wrapping an age header)."""

    def __init__(self, name: str, final_path: Path, key: str, *, replace: bool = False):
        self.name = name
        self.key = key
        self.replace = replace
        self.final_path = final_path
        self.final_path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_path = self.final_path.with_name(f".{self.final_path.name}.partial-{uuid.uuid4()}")
        self._file = open(self.tmp_path, "xb")  # noqa: SIM115 - closed in commit/abort

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)

    def commit(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self.final_path.exists() and not self.replace:
            self.abort()
            raise FileExistsError(f"{self.key} already exists; refusing to overwrite it")
        os.replace(self.tmp_path, self.final_path)
        dir_fd = os.open(self.final_path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp_path.unlink()


class _QueueReader(io.RawIOBase):
    """A read-only stream fed by another thread through a bounded queue."""

    def __init__(self, depth: int = 4):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._buffer = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def feed(self, item) -> None:
        self._queue.put(item)

    def readinto(self, buffer) -> int:
        while not self._buffer and not self._eof:
            item = self._queue.get()
            if item is _EOF:
                self._eof = True
            elif isinstance(item, BaseException):
                raise item
            else:
                self._buffer = memoryview(item)
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class UploadAborted(Exception):
    pass


class StorageSink:
    """Streams into ``storage.save()`` running on its own thread (S3 multipart upload).

    ``explain`` turns the upload's error into the one reported (the backend's own terms).
    With ``replace`` it writes ``key`` itself, over what is there, once complete."""

    def __init__(
        self,
        name: str,
        storage,
        key: str,
        *,
        explain: Callable[[BaseException], BaseException] = lambda exc: exc,
        replace: bool = False,
    ):
        self.name = name
        self.key = key
        self.replace = replace
        self._storage = storage
        self._explain = explain
        self._reader = _QueueReader()
        self._error: BaseException | None = None
        self._saved_as: str | None = None
        self._thread = threading.Thread(target=self._upload, name=f"upload-{name}", daemon=True)
        self._thread.start()

    def _upload(self) -> None:
        try:
            # s3transfer makes one read() per multipart part and takes a short read for the
            # part's end: a buffered reader returns whole parts.
            stream = io.BufferedReader(self._reader, buffer_size=1 << 20)
            content = File(stream, name=self.key)
            if self.replace:
                # save() would pick a free name beside an existing key; _save is the write
                # itself (Django's storage API for what save() calls once it has a name).
                self._saved_as = self._storage._save(self.key, content)
            else:
                self._saved_as = self._storage.save(self.key, content)
        except BaseException as exc:  # noqa: BLE001 - reported by write() and commit()
            self._error = self._explain(exc)

    def write(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        while self._thread.is_alive():
            try:
                self._reader._queue.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue
        raise self._error or UploadAborted("the upload stopped")

    def commit(self) -> None:
        self._reader.feed(_EOF)
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._saved_as != self.key:
            with contextlib.suppress(Exception):
                self._storage.delete(self._saved_as)
            raise FileExistsError(f"{self.key} already exists; refusing to overwrite it")

    def abort(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._drain_and_fail()
            self._thread.join(timeout=60)
        if self._saved_as and not self.replace:  # replaced: the key is the artifact itself
            with contextlib.suppress(Exception):
                self._storage.delete(self._saved_as)

    def _drain_and_fail(self) -> None:
        # Empty the queue so the failure marker fits, then make the uploader's next read
        # raise: s3transfer then aborts the multipart upload.
        with contextlib.suppress(queue.Empty):
            while True:
                self._reader._queue.get_nowait()
        self._reader.feed(UploadAborted("backup aborted"))


Sink = LocalSink | StorageSink


def open_sink(
    backend: DestinationBackend,
    key: str,
    *,
    name: str = "",
    locked_until: datetime | None = None,
    replace: bool = False,
) -> Sink:
    """A sink writing ``key``, named ``name`` in the pipeline (else by its destination),
    the artifact locked until ``locked_until`` (S3 Object Lock) when given; ``replace``:
    over the artifact already there, once the new one is complete."""
    return backend.open_sink(
        key, name=name or backend.label, locked_until=locked_until, replace=replace
    )


def open_artifact_stream(backend: DestinationBackend, key: str) -> BinaryIO:
    """A streaming reader of a stored artifact (never downloaded whole first);
    ArtifactMissing when it is not there."""
    return backend.open_reader(key)


def artifact_size(backend: DestinationBackend, key: str) -> int | None:
    """The stored size, or None when the artifact is not there."""
    return backend.size(key)


def artifact_sizes(backend: DestinationBackend, prefix: str) -> dict[str, int]:
    """{key: stored size} of the artifacts directly under the folder ``prefix``."""
    return backend.list_sizes(prefix)


def delete_artifact(backend: DestinationBackend, key: str) -> None:
    backend.delete(key)


def discard_partial_artifacts(backend: DestinationBackend, key: str) -> int:
    """Remove what an interrupted upload of ``key`` may have left behind.

    Local: the ``.<name>.partial-*`` temporary files. S3: unfinished multipart uploads.
    Returns how many were removed.
    """
    return backend.discard_partial(key)
