"""SQLite: the online backup API copies a consistent image, which is then streamed as is."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import BinaryIO

from .base import (
    COPY_CHUNK,
    ConnectionSpec,
    Dump,
    DumpFailed,
    Engine,
    EngineError,
    RestoreFailed,
)

SIDE_FILES = ("-wal", "-shm", "-journal")


def _connect(path: str, *, read_only: bool) -> sqlite3.Connection:
    uri = Path(path).absolute().as_uri() + ("?mode=ro" if read_only else "?mode=rw")
    return sqlite3.connect(uri, uri=True, timeout=30)


def _count_rows(conn: sqlite3.Connection) -> dict[str, int]:
    tables = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
        "ESCAPE '\\' ORDER BY name"
    ).fetchall()
    counts = {}
    for (table,) in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        counts[table] = conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]  # noqa: S608
    return counts


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SQLiteDump:
    """The backup image, already unlinked from the file system: closing it frees the space."""

    def __init__(self, image: BinaryIO, row_counts: dict[str, int]) -> None:
        self.stdout = image
        self.row_counts = row_counts
        self._killed = False

    def finish(self) -> None:
        if self._killed:
            raise DumpFailed("the sqlite dump was aborted")
        self.stdout.close()

    def kill(self) -> None:
        self._killed = True
        self.stdout.close()

    def __enter__(self) -> SQLiteDump:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stdout.close()


class SQLiteEngine(Engine):
    name = "sqlite"
    extension = "sqlite3"
    tools = ()

    def dump_argv(self, spec: ConnectionSpec, **kw: object) -> list[str]:
        # No tool: the copy runs in-process through sqlite3.Connection.backup.
        return []

    def restore_argv(self, spec: ConnectionSpec, **kw: object) -> list[str]:
        return []

    def _open(self, spec: ConnectionSpec, *, read_only: bool = True) -> sqlite3.Connection:
        if not os.path.isfile(spec.name):
            raise EngineError(f"SQLite database file {spec.name!r} does not exist")
        try:
            conn = _connect(spec.name, read_only=read_only)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            raise EngineError(f"cannot open SQLite database {spec.name!r}: {exc}") from exc
        return conn

    def check_connection(self, spec: ConnectionSpec) -> None:
        self._open(spec).close()

    def server_version(self, spec: ConnectionSpec) -> str:
        return sqlite3.sqlite_version

    def estimate_size(self, spec: ConnectionSpec) -> int | None:
        try:
            return os.path.getsize(spec.name)
        except OSError:
            return None

    def row_counts(self, spec: ConnectionSpec) -> dict[str, int]:
        conn = self._open(spec)
        try:
            return _count_rows(conn)
        finally:
            conn.close()

    def open_dump(self, spec: ConnectionSpec) -> Dump:
        """Copy the database with the backup API into an unlinked temp file and stream it.

        The copy is taken here, synchronously; it stays consistent while others write. The
        temp file goes to options["tmp_dir"] (default: the system temp dir).
        """
        try:
            source = self._open(spec)
        except EngineError as exc:
            raise DumpFailed(str(exc)) from exc
        fd, path = tempfile.mkstemp(
            prefix="strongbox-", suffix=".sqlite3", dir=spec.options.get("tmp_dir")
        )
        os.close(fd)
        try:
            target = sqlite3.connect(path)
            try:
                source.backup(target)
                counts = _count_rows(target)
            finally:
                target.close()
            image = open(path, "rb")  # noqa: SIM115 - handed to the caller, closed by finish/kill
        except sqlite3.Error as exc:
            raise DumpFailed(f"SQLite backup of {spec.name!r} failed: {exc}") from exc
        finally:
            source.close()
            # Unlinked at once: the open handle keeps the data until the dump is closed.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return SQLiteDump(image, counts)

    def restore(self, spec: ConnectionSpec, stream: BinaryIO, *, jobs: int = 1) -> None:
        """Replace the file at spec.name with the image from `stream`, atomically.

        The image is written next to the target, fsynced and checked with integrity_check
        before os.replace, so a bad stream never clobbers the target.
        """
        target = os.path.abspath(spec.name)
        directory = os.path.dirname(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(stream, out, COPY_CHUNK)
                out.flush()
                os.fsync(out.fileno())
            self._verify(tmp)
            # A stale WAL or journal beside the old file would be replayed into the new one.
            for suffix in SIDE_FILES:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(target + suffix)
            os.replace(tmp, target)
            _fsync_dir(directory)
        except OSError as exc:
            raise RestoreFailed(f"cannot write the SQLite database {target!r}: {exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    @staticmethod
    def _verify(path: str) -> None:
        try:
            conn = sqlite3.connect(path)
            try:
                result = conn.execute("PRAGMA integrity_check").fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise RestoreFailed(
                f"the restored data is not a usable SQLite database: {exc}"
            ) from exc
        if result != [("ok",)]:
            problems = "; ".join(str(row[0]) for row in result[:10])
            raise RestoreFailed(f"the restored SQLite database fails integrity_check: {problems}")

    def create_database(self, spec: ConnectionSpec) -> None:
        try:
            sqlite3.connect(spec.name).close()
        except sqlite3.Error as exc:
            raise EngineError(f"cannot create SQLite database {spec.name!r}: {exc}") from exc

    def drop_database(self, spec: ConnectionSpec) -> None:
        for suffix in ("", *SIDE_FILES):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spec.name + suffix)
