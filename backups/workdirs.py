"""Private per-job directories in the worker's temporary directory, the loader processes a job
starts, and removing what a killed worker left behind.

No Django imports. A job (one restore, one test restore) works in ``strongbox-job-<name>``
(mode 0700) under STRONGBOX_TMP_DIR, which holds:

- ``owner``: the worker process running the job, as ``host pid start-time`` (the start time
  from /proc tells a live owner from a recycled pid; another host's job is not judged here);
- ``loaders/<pid>``: every loader (pg_restore, mariadb, psql…) started while the job is
  active (``active()``), each in its own process group, so that killing the group also
  takes the workers a pg_restore forked, and a killed worker's loaders can still be found;
- whatever else the job keeps (option files with passwords, SQLite scratch images).

Spools of backup bytes never appear here by name: they are unlinked encrypted files
(``backups.ephemeral_spool``) and vanish with the process. ``discard()`` kills a job's
loaders and removes its directory; ``sweep()`` does that for every job whose owner is gone,
and removes loose ``strongbox-*`` files older than the caller that no process holds open.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

JOB_PREFIX = "strongbox-job-"
LOOSE_PREFIX = "strongbox-"

_active: contextvars.ContextVar[Path | None] = contextvars.ContextVar("strongbox_job", default=None)


# --- processes ---------------------------------------------------------------------------


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces and parentheses.
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def _identity(pid: int) -> str:
    return f"{socket.gethostname()} {pid} {start_ticks(pid) or 0}"


def _read_identity(path: Path) -> tuple[str, int, int] | None:
    with contextlib.suppress(OSError, ValueError):
        host, pid, ticks = path.read_text().split()
        return host, int(pid), int(ticks)
    return None


# --- a job's directory -------------------------------------------------------------------


def job_path(parent: str | Path, name: str) -> Path:
    return Path(parent) / f"{JOB_PREFIX}{name}"


def create(parent: str | Path, name: str) -> Path:
    """A fresh private directory for the job ``name``, owned by this process."""
    path = job_path(parent, name)
    discard(path)  # a leftover of the same job (a retried restore on a dead worker's host)
    Path(parent).mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=0o700)
    (path / "loaders").mkdir(mode=0o700)
    (path / "owner").write_text(_identity(os.getpid()))
    return path


@contextlib.contextmanager
def active(parent: str | Path, name: str) -> Iterator[Path]:
    """Run the block as job ``name``: loaders it starts are recorded; all is removed after."""
    path = create(parent, name)
    token = _active.set(path)
    try:
        yield path
    finally:
        _active.reset(token)
        discard(path)


def current() -> Path | None:
    return _active.get()


def record_loader(pid: int) -> None:
    """Note a loader the active job started (in its own process group); no job, no note."""
    path = _active.get()
    if path is None:
        return
    with contextlib.suppress(OSError):
        (path / "loaders" / str(pid)).write_text(_identity(pid))


def kill_loaders(path: Path) -> list[int]:
    """SIGKILL the process groups of the loaders recorded in the job directory ``path``."""
    killed = []
    with contextlib.suppress(OSError):
        for record in (path / "loaders").iterdir():
            identity = _read_identity(record)
            if identity is None or identity[0] != socket.gethostname():
                continue
            _, pid, ticks = identity
            leader = start_ticks(pid)
            if leader is not None and leader != ticks:
                continue  # the pid belongs to another process now
            # A gone leader may have left its forked workers in the group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


def discard(path: Path) -> list[int]:
    """Kill a job's loaders and remove its directory; never raises."""
    if not path.exists():
        return []
    killed = kill_loaders(path)
    shutil.rmtree(path, ignore_errors=True)
    return killed


def owner_alive(path: Path) -> bool:
    """Whether the job's owner still runs (or runs on another host, where it may)."""
    identity = _read_identity(path / "owner")
    if identity is None:
        return False
    host, pid, ticks = identity
    return host != socket.gethostname() or start_ticks(pid) == ticks


# --- leftovers -----------------------------------------------------------------------------


def _open_paths() -> set[str]:
    """Every path some process (that this user may look at) holds open."""
    paths = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    paths.add(os.readlink(fd))
    return paths


def sweep(parent: str | Path, *, started_before: float | None = None) -> list[str]:
    """Remove what dead jobs left in ``parent``; returns what was removed.

    A job directory goes when its owner process is gone; its recorded loaders are killed
    first. A loose ``strongbox-*`` file or directory (what older versions spooled there, a
    SQLite dump image) goes when it is older than ``started_before`` (the caller's start) and
    no process holds it open.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return []
    started_before = time.time() if started_before is None else started_before
    removed: list[str] = []
    open_paths: set[str] | None = None
    for entry in parent.iterdir():
        name = entry.name
        if name.startswith(JOB_PREFIX) and entry.is_dir():
            if owner_alive(entry):
                continue
            killed = discard(entry)
            logger.warning("removed the leftovers of %s (killed loaders %s)", name, killed)
            removed.append(name)
        elif name.startswith(LOOSE_PREFIX):
            try:
                if entry.lstat().st_mtime >= started_before:
                    continue
            except OSError:
                continue
            if open_paths is None:
                open_paths = _open_paths()
            if any(p == str(entry) or p.startswith(f"{entry}/") for p in open_paths):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            logger.warning("removed the leftover %s", entry)
            removed.append(name)
    return removed
