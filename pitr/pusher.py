"""The resident WAL pusher of asynchronous archiving (``manage.py wal_pusher``).

One process per database and server, started on demand by the archive_command
(``pitr/wal_async.py``, which explains the spool and the protocol) and gone after
``STRONGBOX_WAL_ASYNC_IDLE_SECONDS`` with nothing to do. Why a process of its own rather
than a django-q2 task: it must read ``pg_wal`` on the database server, as PostgreSQL's
user, where a worker may not run; and it answers within milliseconds, where a task would
wait for a broker and a free worker.

Each pass takes the files PostgreSQL has marked ready, oldest first (its own order), that
have no status yet, and archives up to ``STRONGBOX_WAL_ASYNC_PROCESSES`` at once through
``pitr.archive.wal_archive`` (one thread each: compression, encryption, hashing and I/O
release the GIL). A result becomes ``out/<name>.ok`` or ``out/<name>.error``. A pass runs
when a command wakes it or a file is done, not on a timer: PostgreSQL asks for every file,
so one it has not asked about yet is found at its next request, and a pusher whose
archive_command was switched off stays idle.

The queue limit, ``STRONGBOX_WAL_ASYNC_QUEUE_MAX`` bytes (1 GiB): at most that much WAL is
taken ahead of PostgreSQL (being archived, or archived and not yet acknowledged by its
archive_command). Beyond it the backlog waits in ``pg_wal`` and the log says so once;
unlike pgBackRest's ``archive-push-queue-max`` nothing is ever dropped (reported archived
without being stored), so ``pg_wal`` can grow while a destination is down: the lag alert
(``STRONGBOX_WAL_LAG_SECONDS``) says when.

The gap check of a segment (``wal_gap_check``) waits until no older file is still being
archived: done out of order, it would report the predecessor still in flight as missing.

Between a command taking its ``.ok`` and PostgreSQL renaming ``.ready`` to ``.done`` the file
looks unanswered again. The pusher remembers what it stored (name, the file's identity, its
checksum), so such a file, or one a command that died before exiting asks about again, gets
a new ``.ok`` without being read, hashed and looked up again; an ``.ok`` whose file is no
longer ready (acknowledged, or recycled by PostgreSQL) is removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from django.db import close_old_connections

from backups.models import WalSegment
from config.errors import ApplicationError
from organizations.models import Database
from pitr import wal_async
from pitr.archive import ready_wal_files, wal_archive, wal_gap_check

logger = logging.getLogger(__name__)


class Pusher:
    def __init__(
        self,
        *,
        database: Database,
        pg_wal: Path,
        processes: int,
        queue_max: int,
        idle_seconds: float,
    ) -> None:
        self.database = database
        self.pg_wal = pg_wal
        self.spool = wal_async.database_spool(str(database.pk))
        self.out = Path(self.spool) / "out"
        self.out.mkdir(parents=True, exist_ok=True)
        self.processes = max(1, processes)
        self.queue_max = queue_max
        self.idle_seconds = idle_seconds
        self.in_flight: dict[str, tuple[Future, int]] = {}
        self.stored: dict[str, tuple[str, str]] = {}  # name -> (file identity, sha256)
        self.gap_checks: list[WalSegment] = []
        # (timeline, number) of segments this pusher recorded: a successor needs no gap check.
        self.recorded: dict[tuple[int, int], None] = {}
        self.warned_full = False

    # The FIFO: commands write to it; finished archiving jobs too, through our own writer.
    def _open_wake(self) -> tuple[int, int]:
        path = os.path.join(self.spool, "wake")
        try:
            os.mkfifo(path, 0o600)
        except FileExistsError:
            pass
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        writer = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # never EOF while we run
        return reader, writer

    def run(self) -> None:
        reader, self.writer = self._open_wake()
        idle_since = time.monotonic()
        woken = True  # a new pusher looks at once
        with ThreadPoolExecutor(self.processes, thread_name_prefix="wal-push") as pool:
            while self.pg_wal.is_dir():
                self._collect()
                if woken:
                    self._submit(pool)
                if self.in_flight:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > self.idle_seconds:
                    break
                woken = bool(select.select([reader], [], [], 1.0)[0])
                if woken:
                    try:
                        os.read(reader, 4096)
                    except BlockingIOError:
                        pass
            for future, _size in self.in_flight.values():
                future.result()
            self._collect()
        os.close(reader)
        os.close(self.writer)

    def _statuses(self, ready: set[str]) -> tuple[set[str], int]:
        """Names with a status file, and the bytes of those archived but not acknowledged.
        An ``.ok`` of a file no longer ready is stale (PostgreSQL took the answer, or
        recycled the file): removed."""
        names, waiting = set(), 0
        for entry in os.scandir(self.out):
            name, _, suffix = entry.name.rpartition(".")
            if suffix not in ("ok", "error") or entry.name.startswith("."):
                continue
            if suffix == "ok" and name not in ready:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                continue
            names.add(name)
            if suffix == "ok":
                waiting += _size(os.path.join(self.pg_wal, name))
        return names, waiting

    def _submit(self, pool: ThreadPoolExecutor) -> None:
        ready = ready_wal_files(self.pg_wal)
        ready_names = set(ready)
        self.stored = {n: v for n, v in self.stored.items() if n in ready_names}
        done, waiting = self._statuses(ready_names)
        budget = self.queue_max - waiting - sum(size for _, size in self.in_flight.values())
        backlog = [n for n in ready if n not in done]
        for name in backlog:
            if name in self.in_flight:
                continue
            if len(self.in_flight) >= self.processes:
                return
            size = _size(os.path.join(self.pg_wal, name))
            if size > budget and (self.in_flight or waiting):
                if not self.warned_full:
                    logger.warning(
                        "WAL backlog of %s beyond STRONGBOX_WAL_ASYNC_QUEUE_MAX (%d bytes): "
                        "the rest waits in pg_wal",
                        self.database.pk,
                        self.queue_max,
                    )
                    self.warned_full = True
                return
            budget -= size
            future = pool.submit(self._push, name)
            future.add_done_callback(self._nudge)
            self.in_flight[name] = (future, size)
        self.warned_full = False

    def _nudge(self, _future: Future) -> None:
        try:
            os.write(self.writer, b"d")
        except OSError:
            pass  # full: the loop is awake anyway

    def _push(self, name: str) -> tuple[WalSegment | None, tuple[str, str] | None]:
        """Archive one file; its status file says how it went. Runs on a pool thread.
        Returns the segment to gap-check and what to remember of the file (identity,
        checksum), either None; ``_collect`` on the main thread keeps them."""
        path = self.pg_wal / name
        if self._answer_again(name, path):
            return None, None
        close_old_connections()
        try:
            before = os.stat(path)
            result = wal_archive(
                database=self.database, path=path, name=name, check_gap=False, stored=_stall
            )
            after = os.stat(path)
        except ApplicationError as exc:
            wal_async.write_error(self.spool, name, exc.message)
            return None, None
        except Exception as exc:  # noqa: BLE001 - reported to the waiting command
            logger.exception("pushing %s of %s failed", name, self.database.pk)
            wal_async.write_error(self.spool, name, f"{type(exc).__name__}: {exc}")
            return None, None
        finally:
            close_old_connections()
        identity = wal_async.file_identity(before)
        same = identity == wal_async.file_identity(after)
        checksum = result.segment.checksum_sha256
        wal_async.write_ok(self.spool, name, checksum=checksum, identity=identity if same else "")
        segment = result.segment if result.segment.kind == "segment" else None
        return segment, (identity, checksum) if same else None

    def _answer_again(self, name: str, path: Path) -> bool:
        """A file this pusher stored and recorded, unchanged since: answered from memory."""
        known = self.stored.get(name)
        try:
            identity = wal_async.file_identity(os.stat(path))
        except FileNotFoundError:
            return False
        if known is None or known[0] != identity:
            return False
        wal_async.write_ok(self.spool, name, checksum=known[1], identity=identity)
        return True

    def _collect(self) -> None:
        for name in [n for n, (future, _) in self.in_flight.items() if future.done()]:
            future, _size = self.in_flight.pop(name)
            segment, stored = future.result()
            if stored is not None:
                self.stored[name] = stored
            if segment is not None:
                self.gap_checks.append(segment)
        oldest_in_flight = min(self.in_flight, default=None)
        for segment in sorted(self.gap_checks, key=lambda s: s.name):
            if oldest_in_flight is None or segment.name < oldest_in_flight:
                self.gap_checks.remove(segment)
                self._gap_check(segment)

    def _gap_check(self, segment: WalSegment) -> None:
        """``wal_gap_check``, unless this pusher recorded the predecessor itself (the usual
        case: two queries less per segment)."""
        number = (segment.timeline, segment.segment_number)
        previous = (segment.timeline, segment.segment_number - 1)
        self.recorded[number] = None
        if len(self.recorded) > 4096:
            del self.recorded[next(iter(self.recorded))]
        if previous in self.recorded:
            return
        try:
            wal_gap_check(database=self.database, segment=segment)
        except Exception:  # an alert that could not be raised stops no archiving
            logger.exception("the gap check of %s failed", segment.name)


# Tests only: a crash between storing a file and recording it, on demand. When this names a
# file that exists, the pusher renames it to ``<file>.reached``, writes the file's name and
# its pid into it and hangs (to be killed), once.
STALL_ENV = "STRONGBOX_TEST_WAL_PUSH_STALL"


def _stall(name: str) -> None:
    trigger = os.environ.get(STALL_ENV)
    if not trigger:
        return
    try:
        os.rename(trigger, f"{trigger}.reached")
    except FileNotFoundError:
        return
    with open(f"{trigger}.reached", "w", encoding="ascii") as reached:
        reached.write(f"{name} {os.getpid()}\n")
    while True:
        time.sleep(60)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
