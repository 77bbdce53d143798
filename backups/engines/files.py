"""Files: a tar stream of one directory. Symlinks are stored as links and never followed.

The spec is ConnectionSpec(engine="files", name=<directory>). "Row counts" are the numbers of
files, directories and symlinks, so a restore can be checked the same way as a database's.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import threading
from typing import BinaryIO

from .base import (
    ConnectionSpec,
    Dump,
    DumpFailed,
    Engine,
    EngineError,
    RestoreFailed,
    enlarge_pipe,
)


def _walk(root: str):  # noqa: ANN202 - generator of (relative path, lstat result)
    """Every entry under root, parents first, in a stable order; never descends into links."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue  # deleted while we walked: a live directory, not an error
            yield os.path.relpath(path, root), st


def _kind(mode: int) -> str | None:
    if stat.S_ISLNK(mode):
        return "symlinks"
    if stat.S_ISDIR(mode):
        return "directories"
    if stat.S_ISREG(mode):
        return "files"
    return None  # sockets, fifos, devices: not data, skipped


def _count(root: str) -> dict[str, int]:
    counts = {"files": 0, "directories": 0, "symlinks": 0}
    for _, st in _walk(root):
        kind = _kind(st.st_mode)
        if kind:
            counts[kind] += 1
    return counts


def _refuse_unsafe(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo | None:
    """tarfile's "data" filter, but an absolute name is refused instead of made relative:
    our own archives never contain one, so it means a foreign or tampered archive."""
    if member.name.startswith(("/", os.sep)):
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, dest_path)


class TarDump:
    """A tar stream written by a thread into a pipe; the reader sees plain bytes."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.row_counts: dict[str, int] = {"files": 0, "directories": 0, "symlinks": 0}
        self.skipped: list[str] = []
        self._error: BaseException | None = None
        self._killed = False
        read_fd, write_fd = os.pipe()
        self.stdout: BinaryIO = os.fdopen(read_fd, "rb", buffering=0)
        self._writer = os.fdopen(write_fd, "wb", buffering=0)
        enlarge_pipe(self._writer)
        self._thread = threading.Thread(target=self._run, name="tar-dump", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with tarfile.open(fileobj=self._writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for relpath, st in _walk(self.root):
                    kind = _kind(st.st_mode)
                    if kind is None:
                        self.skipped.append(relpath)
                        continue
                    # recursive=False: _walk visits children; tarfile stores links as links.
                    path = os.path.join(self.root, relpath)
                    try:
                        tar.add(path, arcname=relpath, recursive=False)
                    except FileNotFoundError:
                        # Gone since the walk; tarfile opens the file before writing a header.
                        self.skipped.append(relpath)
                        continue
                    self.row_counts[kind] += 1
        except BaseException as exc:  # reported by finish()
            self._error = exc
        finally:
            try:
                self._writer.close()
            except OSError as exc:
                self._error = self._error or exc

    def finish(self) -> None:
        self._thread.join()
        self.stdout.close()
        if self._killed:
            raise DumpFailed(f"the tar dump of {self.root!r} was aborted")
        if self._error is not None:
            raise DumpFailed(f"tar of {self.root!r} failed: {self._error}")

    def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        # Closing the read end makes the writer fail with a broken pipe and stop.
        self.stdout.close()
        self._thread.join(timeout=30)

    def __enter__(self) -> TarDump:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self.kill()
        self.stdout.close()


class FilesEngine(Engine):
    name = "files"
    extension = "tar"
    tools = ()

    def dump_argv(self, spec: ConnectionSpec, **kw: object) -> list[str]:
        return []  # in-process tarfile, no tool

    def restore_argv(self, spec: ConnectionSpec, **kw: object) -> list[str]:
        return []

    def check_connection(self, spec: ConnectionSpec) -> None:
        if not os.path.isdir(spec.name):
            raise EngineError(f"{spec.name!r} is not a directory")
        if not os.access(spec.name, os.R_OK | os.X_OK):
            raise EngineError(f"directory {spec.name!r} is not readable by this worker")

    def server_version(self, spec: ConnectionSpec) -> str:
        return ""

    def estimate_size(self, spec: ConnectionSpec) -> int | None:
        self.check_connection(spec)
        return sum(st.st_size for _, st in _walk(spec.name) if stat.S_ISREG(st.st_mode))

    def row_counts(self, spec: ConnectionSpec) -> dict[str, int]:
        self.check_connection(spec)
        return _count(spec.name)

    def open_dump(self, spec: ConnectionSpec) -> Dump:
        """Counts in `row_counts` are complete once finish() has returned."""
        try:
            self.check_connection(spec)
        except EngineError as exc:
            raise DumpFailed(str(exc)) from exc
        return TarDump(spec.name)

    def restore(self, spec: ConnectionSpec, stream: BinaryIO, *, jobs: int = 1) -> None:
        """Extract into the existing directory spec.name with tarfile's "data" filter.

        The filter (plus our check) refuses absolute paths, ../ traversal, links pointing
        outside the target and device files. A refused archive raises RestoreFailed; members
        before the bad one may already be extracted, so restore into a scratch directory.
        """
        target = spec.name
        if not os.path.isdir(target):
            raise RestoreFailed(f"restore target {target!r} is not a directory")
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                tar.extractall(target, filter=_refuse_unsafe)  # noqa: S202 - data filter
        except tarfile.FilterError as exc:
            raise RestoreFailed(f"refused an unsafe archive member: {exc}") from exc
        except (tarfile.TarError, OSError) as exc:
            raise RestoreFailed(f"cannot extract the archive into {target!r}: {exc}") from exc

    def create_database(self, spec: ConnectionSpec) -> None:
        os.makedirs(spec.name, exist_ok=True)

    def drop_database(self, spec: ConnectionSpec) -> None:
        shutil.rmtree(spec.name, ignore_errors=True)
