"""Asynchronous WAL archiving: the archive_command's side, which never starts Django.

In the spirit of pgBackRest's ``archive-async``: PostgreSQL's archiver runs archive_command
for one file at a time, so a command that starts Django (about a second of CPU) and then
compresses, encrypts and uploads the file caps archiving at a few segments a second. In
async mode (``archive_wal --async``) the command only asks; a resident pusher
(``pitr/pusher.py``, ``manage.py wal_pusher``) takes every file PostgreSQL has marked ready
(``pg_wal/archive_status/*.ready``), several at a time, and stores each through the same
``pitr.archive.wal_archive`` as the synchronous command: every destination of the
environment, recorded, or an error.

The spool (``STRONGBOX_WAL_SPOOL_DIR/<database id>/``) holds only small files:

- ``out/<name>.ok``: the pusher stored and recorded ``name`` (written, fsync'd, renamed,
  directory fsync'd, only after that). It says which file was read (size, inode,
  modification time, SHA-256), so the command can tell it is the file PostgreSQL is asking
  about without hashing 16 MiB again;
- ``out/<name>.error``: the pusher's last attempt failed, and why;
- ``pusher.lock`` (held by the running pusher: liveness), ``wake`` (a FIFO the command writes
  a byte to), ``pusher.log``.

What the command does for ``%p %f``: an ``.ok`` that matches the file -> remove it, exit 0.
Otherwise remove a stale ``.error``, start the pusher if none holds the lock (detached, its
own session, the lock handed over already taken so a second command never starts a
second pusher), wake it and wait for ``.ok`` (exit 0) or ``.error`` (its message on
stderr, exit 1), checking the pusher is still alive and starting another if it died, until
``STRONGBOX_WAL_ASYNC_TIMEOUT`` seconds (60) have passed (exit 1: PostgreSQL retries).

So PostgreSQL's "archived" still means "stored in every destination and recorded": nothing
is ever acknowledged from the spool alone, and a crash anywhere (command, pusher, machine)
leaves at worst a file stored but not acknowledged, which the next attempt finds stored
(same checksum) and acknowledges. The trade-off against a store-and-forward spool (copy the
segment locally, answer at once): a slow destination still holds PostgreSQL back, and the
backlog waits in ``pg_wal``, never on a second disk.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import time

DEFAULT_TIMEOUT = 60.0
BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUSHER_LOCK_FD_ENV = "STRONGBOX_WAL_PUSHER_LOCK_FD"


def _spool_root() -> str:
    """As ``wal_spool.spool_root`` (which needs pathlib: too slow to import here)."""
    configured = os.environ.get("STRONGBOX_WAL_SPOOL_DIR")
    if configured:
        return configured
    var = os.environ.get("STRONGBOX_VAR_DIR") or os.path.join(BASE_DIR, "var")
    return os.path.join(var, "wal-spool")


def database_spool(database_id: str) -> str:
    return os.path.join(_spool_root(), str(database_id))


def ok_path(spool: str, name: str) -> str:
    return os.path.join(spool, "out", f"{name}.ok")


def error_path(spool: str, name: str) -> str:
    return os.path.join(spool, "out", f"{name}.error")


# --- status files (written by the pusher) -------------------------------------------------


def _write_durably(path: str, text: str) -> None:
    """Write, fsync, rename into place and fsync the directory: after a crash the file is
    either absent or complete."""
    directory = os.path.dirname(path)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def file_identity(stat: os.stat_result) -> str:
    return f"{stat.st_size} {stat.st_ino} {stat.st_mtime_ns}"


def write_ok(spool: str, name: str, *, checksum: str, identity: str) -> None:
    """``identity``: ``file_identity`` of the file as it was read, or "" when it changed
    meanwhile (the command then compares checksums)."""
    os.makedirs(os.path.join(spool, "out"), exist_ok=True)
    _write_durably(ok_path(spool, name), f"{checksum} {identity}\n")


def write_error(spool: str, name: str, message: str) -> None:
    os.makedirs(os.path.join(spool, "out"), exist_ok=True)
    _write_durably(error_path(spool, name), message.encode("ascii", "replace").decode() + "\n")


def _sha256(path: str) -> str:
    import hashlib  # noqa: PLC0415 - only when the file's identity did not match

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ok_matches(spool: str, name: str, path: str) -> bool:
    """True when ``name``'s ``.ok`` is about the file at ``path``: the same file, unchanged
    since it was read (size, inode, mtime), else the same SHA-256."""
    try:
        with open(ok_path(spool, name), encoding="ascii") as handle:
            checksum, _, identity = handle.read().strip().partition(" ")
        if identity and identity == file_identity(os.stat(path)):
            return True
        return _sha256(path) == checksum
    except (OSError, UnicodeDecodeError, ValueError):
        return False


# --- the pusher's liveness and start -----------------------------------------------------


def take_lock(spool: str) -> int | None:
    """The pusher lock's fd, taken; None when a pusher holds it."""
    fd = os.open(os.path.join(spool, "pusher.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def ensure_pusher(spool: str, database_id: str, pg_wal: str) -> bool:
    """Start a pusher unless one is alive. True when this call started it."""
    lock = take_lock(spool)
    if lock is None:
        return False
    # Imported here: subprocess costs more to import than the rest of this fast path.
    import subprocess  # noqa: PLC0415

    try:
        manage = os.path.join(BASE_DIR, "manage.py")
        argv = [sys.executable, manage, "wal_pusher", "--database", database_id, "--pg-wal", pg_wal]
        with open(os.path.join(spool, "pusher.log"), "ab") as log:
            subprocess.Popen(  # noqa: S603 - argv list, no shell
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(lock,),
                env={**os.environ, PUSHER_LOCK_FD_ENV: str(lock)},
                start_new_session=True,  # outlives this command; PostgreSQL never waits on it
                close_fds=True,
            )
    finally:
        os.close(lock)  # the pusher holds the lock through its inherited copy
    return True


def wake(spool: str) -> None:
    """One byte into the pusher's FIFO; nothing when no pusher has it open yet (a starting
    pusher scans everything first anyway)."""
    try:
        fd = os.open(os.path.join(spool, "wake"), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader; ENOENT: no pusher ever
        return
    try:
        os.write(fd, b"w")
    except OSError:  # EAGAIN: full of wake-ups already
        pass
    finally:
        os.close(fd)


# --- the command -------------------------------------------------------------------------


def parse_args(args: list[str]) -> tuple[str, str, str] | None:
    """(database id, %p, %f) of ``--database ID --async %p %f``; None for anything else."""
    database, positional, is_async = None, [], False
    iterator = iter(args)
    for arg in iterator:
        if arg == "--database":
            database = next(iterator, None)
        elif arg.startswith("--database="):
            database = arg.split("=", 1)[1]
        elif arg == "--async":
            is_async = True
        else:
            positional.append(arg)
    plain = database and "/" not in database and not database.startswith(".")
    if not (is_async and plain and len(positional) == 2):
        return None
    name = positional[1]
    if "/" in name or name.startswith("."):
        return None
    return database, positional[0], name


def archive(database_id: str, path: str, name: str, *, timeout: float | None = None) -> int:
    """The async archive_command: 0 once ``name`` is stored everywhere, 1 otherwise (the
    reason on stderr, which PostgreSQL logs)."""
    if timeout is None:
        timeout = float(os.environ.get("STRONGBOX_WAL_ASYNC_TIMEOUT") or DEFAULT_TIMEOUT)
    spool = database_spool(database_id)
    if ok_matches(spool, name, path):
        _consume(spool, name)
        return 0
    if not os.path.isfile(path):
        sys.stderr.write(f"archive_wal: {name} NOT archived: no file {path}\n")
        return 1
    os.makedirs(os.path.join(spool, "out"), exist_ok=True)
    _unlink(error_path(spool, name))  # an earlier attempt's: this one tries afresh
    pg_wal = os.path.dirname(os.path.abspath(path))
    deadline = time.monotonic() + timeout
    next_check = 0.0
    pause = 0.001
    started = 0
    while True:
        now = time.monotonic()
        if now >= next_check:  # a pusher that died (or went idle) is replaced, once
            if ensure_pusher(spool, database_id, pg_wal):
                started += 1
                if started > 1:
                    sys.stderr.write(
                        f"archive_wal: {name} NOT archived: the pusher stopped without an "
                        f"answer; {_log_tail(spool)}\n"
                    )
                    return 1
            wake(spool)
            next_check = now + 0.5
        status = _answer(spool, name, path)
        if status is not None:
            return status
        if now >= deadline:
            sys.stderr.write(
                f"archive_wal: {name} NOT archived yet after {timeout:.0f} s (the pusher is "
                f"still at it, or stuck: see {os.path.join(spool, 'pusher.log')}); "
                "PostgreSQL will try again\n"
            )
            return 1
        time.sleep(pause)
        pause = min(pause * 2, 0.01)


def _answer(spool: str, name: str, path: str) -> int | None:
    """0 for a matching ``.ok``, 1 for an ``.error`` (its message on stderr), else None."""
    if os.path.exists(ok_path(spool, name)):
        if ok_matches(spool, name, path):
            _consume(spool, name)
            return 0
        _consume(spool, name)  # about another file of that name: ask again
        wake(spool)
    try:
        with open(error_path(spool, name), encoding="ascii", errors="replace") as handle:
            message = handle.read().strip()
    except FileNotFoundError:
        return None
    sys.stderr.write(f"archive_wal: {name} NOT archived: {message}\n")
    return 1


def _consume(spool: str, name: str) -> None:
    _unlink(ok_path(spool, name))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _log_tail(spool: str) -> str:
    path = os.path.join(spool, "pusher.log")
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - 600))
            tail = handle.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        tail = []
    return f"its log ({path}) ends: {tail[-1]}" if tail else f"see {path}"


def main(args: list[str]) -> int | None:
    """The exit status of ``archive_wal --async``; None for arguments it does not handle
    (the full command answers them)."""
    parsed = parse_args(args)
    if parsed is None:
        return None
    return archive(*parsed)
