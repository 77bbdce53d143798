"""Shared pieces of the backup/restore engines: the connection spec, errors, the Dump protocol,
the Engine base class and a subprocess-backed dump.

No Django imports here: engines are driven by services but tested on plain streams and real
servers.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, BinaryIO, Protocol, runtime_checkable

from backups import workdirs

STDERR_TAIL_BYTES = 2048
# Large pipe so the pipeline thread (compress, encrypt, upload) does not stall the dump tool.
PIPE_SIZE = 1024 * 1024
COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ConnectionSpec:
    """Where a database lives. `name` is the database name; for sqlite and files, a path."""

    engine: str
    host: str = ""
    port: int | None = None
    user: str = ""
    password: str = field(default="", repr=False)
    name: str = ""
    options: Mapping[str, str] = field(default_factory=dict)
    # The address to connect to in place of resolving `host` (set by `resolved`).
    hostaddr: str = ""
    # Checks `host` and returns the address to connect to ("" to let the client resolve it,
    # for the local machine), raising OSError when it may not be reached. Set by the app for
    # tenants' databases (its host policy); called by `resolved` just before connecting.
    address_check: Callable[[str, int | None], str] | None = field(
        default=None, compare=False, repr=False
    )


class EngineError(Exception):
    """Base error; its message is meant for an operator and carries the tool's stderr tail."""


def resolved(spec: ConnectionSpec) -> ConnectionSpec:
    """`spec` with its host checked and resolved now, the checked address in `hostaddr`.

    Every engine connects through the result (drivers and tools alike), so the address that
    was checked is the one connected to: a DNS answer that changes later cannot redirect the
    connection. A spec without an `address_check` is returned as it is."""
    if spec.address_check is None:
        return spec
    try:
        address = spec.address_check(spec.host, spec.port)
    except OSError as exc:
        raise EngineError(str(exc)) from exc
    return replace(spec, hostaddr=address, address_check=None)


class EngineUnavailable(EngineError):
    """A tool or driver the engine needs is missing on this worker."""


class DumpFailed(EngineError):
    pass


class RestoreFailed(EngineError):
    pass


@runtime_checkable
class Dump(Protocol):
    """A running dump. Read `stdout` to EOF, then call `finish()`; `kill()` aborts.

    finish() before EOF can block forever: the tool waits for its pipe to be read.
    """

    stdout: BinaryIO
    row_counts: dict[str, int]

    def finish(self) -> None: ...

    def kill(self) -> None: ...

    # Leaving the block kills a dump that was not finished.
    def __enter__(self) -> Dump: ...

    def __exit__(self, *exc: object) -> None: ...


def stderr_tail(data: bytes, limit: int = STDERR_TAIL_BYTES) -> str:
    """The last `limit` bytes of a tool's stderr, decoded leniently and stripped."""
    tail = data[-limit:].decode("utf-8", errors="replace").strip()
    return ("…" + tail) if len(data) > limit else tail


def enlarge_pipe(fileobj: IO[bytes]) -> None:
    # Linux only; the default 64 KiB pipe makes the dump tool block on every small hiccup.
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(fileobj.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


class _StderrCollector(threading.Thread):
    """Drains a pipe so the tool never blocks on a full stderr; keeps only the tail."""

    def __init__(self, pipe: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.tail = b""

    def run(self) -> None:
        while chunk := self.pipe.read(65536):
            self.tail = (self.tail + chunk)[-STDERR_TAIL_BYTES * 2 :]
        self.pipe.close()

    def text(self) -> str:
        self.join(timeout=5)
        return stderr_tail(self.tail)


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: int | IO[bytes] | None = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = subprocess.PIPE,
    error_class: type[EngineError] = DumpFailed,
    loader: bool = False,
    pass_fds: Sequence[int] = (),
) -> tuple[subprocess.Popen[bytes], _StderrCollector]:
    """Start a tool without a shell; a missing binary becomes EngineUnavailable.

    A ``loader`` (a restore tool) gets a process group of its own, recorded in the active job
    (``backups.workdirs``): a reaper or the next worker can kill it and whatever it forked
    even after this process was killed.
    """
    full_env = {**os.environ, **(env or {})}
    try:
        proc = subprocess.Popen(  # argv list, never a shell
            list(argv),
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=full_env,
            bufsize=0,
            close_fds=True,
            pass_fds=tuple(pass_fds),
            start_new_session=loader,
        )
    except FileNotFoundError as exc:
        raise EngineUnavailable(f"{argv[0]} is not installed on this worker") from exc
    except OSError as exc:
        raise error_class(f"could not start {argv[0]}: {exc}") from exc
    if loader:
        workdirs.record_loader(proc.pid)
    assert proc.stderr is not None  # noqa: S101 - stderr=PIPE above
    collector = _StderrCollector(proc.stderr)
    collector.start()
    return proc, collector


class FeedingReader:
    """A dump's stdout whose every piece read is also handed to ``feed`` (the engines'
    stream readers count rows and hash tables in what the pipeline reads through it)."""

    def __init__(self, raw: BinaryIO, feed: Callable[[bytes], None]) -> None:
        self._raw = raw
        self._feed = feed

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self._feed(data)
        return data

    def readinto(self, buffer: memoryview) -> int:
        """Straight into the caller's buffer (the pipeline's chunk); ``feed`` sees that view."""
        n = self._raw.readinto(buffer) or 0
        if n:
            self._feed(buffer[:n])
        return n

    def fileno(self) -> int:
        return self._raw.fileno()

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()


class ProcessDump:
    """A Dump backed by a child process writing the dump to its stdout.

    `cleanups` run once, after the process is gone (close a snapshot transaction, delete a
    passfile). Use as a context manager: leaving the block kills an unfinished dump.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        row_counts: dict[str, int] | None = None,
        cleanups: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.tool = os.path.basename(argv[0])
        self.row_counts: dict[str, int] = row_counts if row_counts is not None else {}
        self._cleanups = list(cleanups)
        self._done = False
        self._killed = False
        try:
            self._proc, self._stderr = spawn(argv, env=env)
        except BaseException:
            self._run_cleanups()
            raise
        assert self._proc.stdout is not None  # noqa: S101 - stdout=PIPE in spawn
        enlarge_pipe(self._proc.stdout)
        self.stdout: BinaryIO = self._proc.stdout  # type: ignore[assignment]

    @property
    def pid(self) -> int:
        return self._proc.pid

    def finish(self) -> None:
        """Wait for the tool; raise DumpFailed with its stderr tail on a non-zero exit."""
        if self._done:
            if self._killed:
                raise DumpFailed(f"{self.tool} was aborted")
            return
        try:
            returncode = self._proc.wait()
            errors = self._stderr.text()
        finally:
            self._close()
        if self._killed:
            raise DumpFailed(f"{self.tool} was aborted ({describe_exit(returncode)}): {errors}")
        if returncode != 0:
            raise DumpFailed(f"{self.tool} {describe_exit(returncode)}: {errors}")

    def kill(self) -> None:
        """Abort the dump; safe to call more than once or after finish()."""
        if self._done:
            return
        self._killed = True
        with contextlib.suppress(ProcessLookupError):
            self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._close()

    def _close(self) -> None:
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            self.stdout.close()
        self._run_cleanups()

    def _run_cleanups(self) -> None:
        while self._cleanups:
            with contextlib.suppress(Exception):
                self._cleanups.pop()()

    def __enter__(self) -> ProcessDump:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _noop() -> None:
    return None


def run_restore(
    argv: Sequence[str],
    stream: BinaryIO | None,
    *,
    env: Mapping[str, str] | None = None,
    tick: Callable[[], None] = _noop,
    pass_fds: Sequence[int] = (),
) -> None:
    """Run a restore tool, feeding it `stream` on stdin (or nothing when the argv names a file;
    `pass_fds` stay open in it, e.g. a file it reads as ``/dev/fd/N``).

    The calling thread never blocks for long without calling `tick`, so a caller can keep its
    heartbeat fresh during the tool's final steps (index builds, the commit), which can
    outlast a heartbeat timeout.
    """
    tool = os.path.basename(argv[0])
    proc, collector = spawn(
        argv,
        env=env,
        stdin=subprocess.PIPE if stream is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        error_class=RestoreFailed,
        loader=True,
        pass_fds=pass_fds,
    )
    broken = False
    try:
        if stream is not None:
            assert proc.stdin is not None  # noqa: S101 - stdin=PIPE above
            enlarge_pipe(proc.stdin)
            try:
                while chunk := stream.read(COPY_CHUNK):
                    proc.stdin.write(chunk)
                    tick()
            except BrokenPipeError:
                # The tool quit early; its exit status and stderr say why.
                broken = True
            finally:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
        returncode = _wait_ticking(proc, tick)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    errors = collector.text()
    if returncode != 0:
        raise RestoreFailed(f"{tool} {describe_exit(returncode)}: {errors}")
    if broken:
        raise RestoreFailed(f"{tool} stopped reading its input early: {errors}")


def _wait_ticking(proc: subprocess.Popen[bytes], tick: Callable[[], None]) -> int:
    while True:
        try:
            return proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            tick()


class Engine:
    """One subclass per database kind. argv builders are pure; the rest talks to the server."""

    name: str = ""
    extension: str = ""
    tools: tuple[str, ...] = ()

    def missing_tools(self) -> list[str]:
        return [tool for tool in self.tools if shutil.which(tool) is None]

    def dump_argv(self, spec: ConnectionSpec, **kw: object) -> list[str]:
        raise NotImplementedError

    def restore_argv(self, spec: ConnectionSpec, **kw: object) -> list[str]:
        raise NotImplementedError

    def server_version(self, spec: ConnectionSpec) -> str:
        raise NotImplementedError

    def estimate_size(self, spec: ConnectionSpec) -> int | None:
        return None

    def row_counts(self, spec: ConnectionSpec) -> dict[str, int]:
        raise NotImplementedError

    def open_dump(self, spec: ConnectionSpec) -> Dump:
        raise NotImplementedError

    def restore(self, spec: ConnectionSpec, stream: BinaryIO, *, jobs: int = 1) -> None:
        """Load a dump into `spec` (SQLite, files, MongoDB; `restores.loading` calls it).

        PostgreSQL and MySQL have none: `restores.loading` loads them itself, with the role
        scan and the swap those need."""
        raise NotImplementedError

    def create_database(self, spec: ConnectionSpec) -> None:
        raise NotImplementedError

    def drop_database(self, spec: ConnectionSpec) -> None:
        raise NotImplementedError

    def check_connection(self, spec: ConnectionSpec) -> None:
        raise NotImplementedError

    def require_tools(self) -> None:
        missing = self.missing_tools()
        if missing:
            raise EngineUnavailable(
                f"{', '.join(missing)} not installed on this worker; "
                f"it is needed to back up and restore {self.name} databases"
            )
