"""PostgreSQL physical backups: pg_basebackup, WAL file names, recovery configuration.

Pure functions (argv, WAL name arithmetic, label and pg_waldump parsing, recovery settings)
and small runners (the base backup stream, extraction, starting a recovered cluster). No
Django imports: the rest of ``pitr`` drives these. It lives here, not in ``backups/engines/``,
because it is no registry engine (nothing looks it up by engine name): it is the physical
side of PostgreSQL that only point-in-time recovery uses, base backup and recovery both.

Why ``pg_basebackup --format=tar --pgdata=- --wal-method=none``: Strongbox archives every
WAL file through ``archive_command``, and a base backup taken over the replication protocol
waits (``BASE_BACKUP ... WAIT``) until the last segment it needs has been archived. So the
base backup ends only once the archive holds everything that makes it consistent, the
artifact is one tar stream (no tablespaces other than the default ones: pg_basebackup
refuses to write several to stdout) and no WAL is stored twice. The price: a base backup
cannot finish while archiving is broken; that is what the wal_archiving_failed alert is for.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from backups.engines.base import (
    ConnectionSpec,
    DumpFailed,
    EngineError,
    EngineUnavailable,
    ProcessDump,
)
from backups.engines.postgresql import PostgreSQLEngine

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
# backup_label is the first member pg_basebackup sends; this much of the stream is kept.
LABEL_CAPTURE_BYTES = 1 << 20

SEGMENT_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
PARTIAL_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.partial$")
BACKUP_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.[0-9A-F]{8}\.backup$")
HISTORY_RE = re.compile(r"^([0-9A-F]{8})\.history$")
XACT_RE = re.compile(
    r"desc: (?:COMMIT|ABORT)\S* (?:\d+: )?"
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC"
)


class RecoveryFailed(EngineError):
    pass


# --- WAL names ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WalName:
    """What a WAL file name says. ``number`` orders segments across log ids."""

    name: str
    kind: str  # "segment" | "partial" | "backup" | "history"
    timeline: int
    number: int | None


def segments_per_log(segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    return 0x100000000 // segment_size


def parse_wal_name(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> WalName:
    """Classify a file name PostgreSQL archives; anything else raises ValueError.

    The strict patterns also keep a name from ever reaching a storage key as a path.
    """
    for kind, pattern in (("segment", SEGMENT_RE), ("partial", PARTIAL_RE), ("backup", BACKUP_RE)):
        match = pattern.match(name)
        if match:
            tli, log, seg = (int(part, 16) for part in match.groups())
            return WalName(name, kind, tli, log * segments_per_log(segment_size) + seg)
    match = HISTORY_RE.match(name)
    if match:
        return WalName(name, "history", int(match.group(1), 16), None)
    raise ValueError(f"{name!r} is not a WAL file name")


def segment_name(timeline: int, number: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    per_log = segments_per_log(segment_size)
    return f"{timeline:08X}{number // per_log:08X}{number % per_log:08X}"


def lsn_to_int(lsn: str) -> int:
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def segment_number_of_lsn(lsn: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    return lsn_to_int(lsn) // segment_size


# --- labels and pg_waldump -----------------------------------------------------------------


def parse_backup_label(text: str) -> dict[str, str]:
    """``KEY: value`` lines of a backup_label or a ``*.backup`` history file."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def label_location(value: str) -> tuple[str, str]:
    """``0/2000028 (file 000000010000000000000002)`` -> (lsn, file name)."""
    match = re.match(r"^([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{24})\)$", value)
    if not match:
        raise ValueError(f"unexpected WAL location {value!r}")
    return match.group(1), match.group(2)


def label_time(value: str) -> datetime | None:
    """``2026-11-23 13:42:56 UTC`` -> aware datetime (labels are written in UTC here)."""
    match = re.match(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (\S+)$", value)
    if not match or match.group(2) not in ("UTC", "GMT", "+00"):
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def waldump_argv(path: str, *, pg_bin: str = "") -> list[str]:
    return [
        os.path.join(pg_bin, "pg_waldump") if pg_bin else "pg_waldump",
        "--rmgr=Transaction",
        path,
    ]


def parse_xact_times(output: str) -> tuple[datetime | None, datetime | None]:
    """First and last commit/abort time in pg_waldump's output (run with TZ=UTC)."""
    times = [
        datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC)
        for match in XACT_RE.finditer(output)
    ]
    if not times:
        return None, None
    return min(times), max(times)


def xact_times(
    path: str, *, pg_bin: str = "", timeout: float = 30
) -> tuple[datetime | None, datetime | None]:
    """Transaction times in one segment. A record running into the next segment makes
    pg_waldump exit non-zero after printing the rest, so its status is not an error here."""
    try:
        proc = subprocess.run(  # noqa: S603 - argv list, no shell
            waldump_argv(path, pg_bin=pg_bin),
            capture_output=True,
            timeout=timeout,
            env={**os.environ, "TZ": "UTC"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    return parse_xact_times(proc.stdout.decode("utf-8", errors="replace"))


class XactTimes:
    """``xact_times`` running in the background: started at once, its answer taken with
    ``result()`` (None, None when pg_waldump is missing, fails or overruns)."""

    def __init__(self, path: str, *, pg_bin: str = "", timeout: float = 30) -> None:
        self.timeout = timeout
        # A file, not a pipe: many commits would fill a pipe and stall pg_waldump until read.
        self.output = tempfile.TemporaryFile()  # noqa: SIM115 - closed in result()/cancel()
        try:
            self.proc: subprocess.Popen | None = subprocess.Popen(  # noqa: S603 - argv list
                waldump_argv(path, pg_bin=pg_bin),
                stdout=self.output,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "TZ": "UTC"},
            )
        except OSError:
            self.proc = None

    def result(self) -> tuple[datetime | None, datetime | None]:
        if self.proc is None:
            self.output.close()
            return None, None
        try:
            self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.cancel()
            return None, None
        with self.output:
            self.output.seek(0)
            return parse_xact_times(self.output.read().decode("utf-8", errors="replace"))

    def cancel(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.output.close()


# --- binaries ------------------------------------------------------------------------------


def pg_bin_dir(major: str | None = None, *, configured: str = "") -> str:
    """The directory of the server binaries: configured, else the Debian layout for
    ``major``, else wherever ``pg_ctl`` is on PATH, else the newest Debian one."""
    if configured:
        return configured
    debian = Path("/usr/lib/postgresql")
    if major and (debian / major / "bin" / "pg_ctl").exists():
        return str(debian / major / "bin")
    found = shutil.which("pg_ctl")
    if found:
        return str(Path(found).resolve().parent)  # /usr/local/bin/pg_ctl may be a symlink
    versions = sorted(
        (p for p in debian.glob("*/bin") if (p / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return str(versions[-1])
    raise EngineUnavailable("PostgreSQL server binaries (pg_ctl, postgres) are not installed")


# --- base backup ---------------------------------------------------------------------------


def basebackup_argv(spec: ConnectionSpec, *, label: str, pg_bin: str = "") -> list[str]:
    argv = [
        os.path.join(pg_bin, "pg_basebackup") if pg_bin else "pg_basebackup",
        "--pgdata=-",
        "--format=tar",
        "--wal-method=none",
        "--checkpoint=fast",
        f"--label={label}",
        "--no-password",
    ]
    if spec.host:
        argv.append(f"--host={spec.host}")
    if spec.port:
        argv.append(f"--port={spec.port}")
    if spec.user:
        argv.append(f"--username={spec.user}")
    return argv


@dataclass(frozen=True)
class BaseLabel:
    timeline: int
    start_lsn: str
    start_wal: str
    start_time: datetime | None
    label: str


class BaseBackupStream:
    """The tar stream of a running pg_basebackup, readable by the pipeline.

    Keeps the beginning of the stream to read ``backup_label`` afterwards, and at EOF
    waits for the tool so that a failed exit fails the read (and the backup).
    """

    def __init__(self, dump: ProcessDump) -> None:
        self.dump = dump
        self._head = bytearray()
        self._ended = False

    @classmethod
    def open(cls, spec: ConnectionSpec, *, label: str, pg_bin: str = "") -> BaseBackupStream:
        argv = basebackup_argv(spec, label=label, pg_bin=pg_bin)
        return cls(ProcessDump(argv, env=PostgreSQLEngine.tool_env(spec)))

    def read(self, size: int = -1) -> bytes:
        data = self.dump.stdout.read(size)
        if len(self._head) < LABEL_CAPTURE_BYTES:
            self._head += data[: LABEL_CAPTURE_BYTES - len(self._head)]
        if not data and not self._ended:
            self._ended = True
            self.dump.finish()
        return data

    def fileno(self) -> int:
        return self.dump.stdout.fileno()

    def readable(self) -> bool:
        return True

    def kill(self) -> None:
        self.dump.kill()

    def label(self) -> BaseLabel:
        """The backup_label of the stream just read."""
        text = read_tar_member(bytes(self._head), "backup_label")
        if text is None:
            raise DumpFailed("pg_basebackup's output has no backup_label")
        fields = parse_backup_label(text.decode("utf-8", errors="replace"))
        lsn, wal = label_location(fields.get("START WAL LOCATION", ""))
        return BaseLabel(
            timeline=int(fields.get("START TIMELINE", "0") or parse_wal_name(wal).timeline),
            start_lsn=lsn,
            start_wal=wal,
            start_time=label_time(fields.get("START TIME", "")),
            label=fields.get("LABEL", ""),
        )


def read_tar_member(head: bytes, name: str) -> bytes | None:
    """The content of member ``name`` if it lies entirely within ``head`` (a tar prefix)."""
    with contextlib.suppress(tarfile.TarError, EOFError):
        with tarfile.open(fileobj=io.BytesIO(head), mode="r|") as tar:
            for member in tar:
                if member.name.lstrip("./") == name and member.isfile():
                    handle = tar.extractfile(member)
                    return handle.read() if handle else None
    return None


# --- restore side ----------------------------------------------------------------------------


def extract_base_backup(stream: BinaryIO, datadir: Path) -> None:
    """Unpack a base backup tar stream into a new, empty data directory."""
    datadir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(datadir.iterdir()):
        raise RecoveryFailed(f"{datadir} is not empty; a restore needs a new data directory")
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            # Files belong to whoever restores (the server's user), not to the uid in the
            # tar, which tarfile would otherwise apply when running as root.
            tar.chown = lambda *args, **kwargs: None  # type: ignore[method-assign]
            # "tar" filter: no absolute paths or links leaving datadir, modes kept.
            tar.extractall(datadir, filter="tar")
    except tarfile.TarError as exc:
        raise RecoveryFailed(f"the base backup could not be unpacked: {exc}") from exc
    (datadir / "pg_wal" / "archive_status").mkdir(parents=True, exist_ok=True)
    os.chmod(datadir, 0o700)


def restore_command(argv: Sequence[str]) -> str:
    """A restore_command line (run by PostgreSQL through a shell) from an argv whose
    items may contain ``%f`` and ``%p``."""
    return " ".join(item if item in ("%f", "%p") else shlex.quote(item) for item in argv)


def _conf_value(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def recovery_settings(
    *,
    restore_command: str,
    target_time: datetime,
    port: int,
    socket_dir: str,
    listen_addresses: str = "localhost",
    inclusive: bool = True,
    extra: Mapping[str, str] | None = None,
) -> str:
    """Lines appended to postgresql.auto.conf of the restored cluster (they win over
    postgresql.conf). Archiving is switched off: this is a copy, and it must not push a
    new timeline into the archive of the database it came from."""
    settings = {
        "restore_command": restore_command,
        "recovery_target_time": target_time.astimezone(UTC).isoformat(),
        "recovery_target_action": "promote",
        "recovery_target_timeline": "latest",
        "recovery_target_inclusive": "on" if inclusive else "off",
        "archive_mode": "off",
        "port": str(port),
        "listen_addresses": listen_addresses,
        "unix_socket_directories": socket_dir,
        "logging_collector": "off",
        "log_destination": "stderr",
        "hot_standby": "on",
        **(extra or {}),
    }
    lines = ["", "# Added by Strongbox for a point-in-time restore"]
    lines += [f"{name} = {_conf_value(value)}" for name, value in settings.items()]
    return "\n".join(lines) + "\n"


LOCAL_TRUST_HBA = (
    "# Written by Strongbox: this recovered copy listens only on a private socket directory,\n"
    "# so its original authentication rules (which may need passwords) are not used.\n"
    "local all all trust\n"
)


def write_local_trust_hba(datadir: Path) -> None:
    """Replace pg_hba.conf of a recovered copy that listens on no TCP address at all and on
    a socket in a directory only its owner can enter (``listen_addresses = ''``)."""
    (datadir / "pg_hba.conf").write_text(LOCAL_TRUST_HBA, encoding="utf-8")


DEFAULT_HBA = (
    "# Written by Strongbox: the base backup held no pg_hba.conf (it lived outside the data\n"
    "# directory). Local socket users by peer, loopback by password.\n"
    "local all all peer\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
    "host all all ::1/128 scram-sha-256\n"
)


def write_default_hba(datadir: Path) -> None:
    (datadir / "pg_hba.conf").write_text(DEFAULT_HBA, encoding="utf-8")


def write_recovery_config(datadir: Path, settings_text: str) -> None:
    with open(datadir / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
        conf.write(settings_text)
    for leftover in ("standby.signal", "postmaster.pid", "postmaster.opts"):
        with contextlib.suppress(FileNotFoundError):
            (datadir / leftover).unlink()
    (datadir / "recovery.signal").touch()


def pg_ctl_argv(
    action: str, datadir: Path, *, pg_bin: str, log_path: Path | None = None, mode: str = "fast"
) -> list[str]:
    argv = [os.path.join(pg_bin, "pg_ctl"), action, "-D", str(datadir)]
    if action == "start":
        argv += ["-W"]  # recovery may take long; progress is followed in the log
        if log_path is not None:
            argv += ["-l", str(log_path)]
    elif action == "stop":
        argv += ["-m", mode, "-w", "-t", "60"]
    return argv


def run_pg_ctl(
    argv: Sequence[str], *, launcher: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> None:
    """Run pg_ctl, optionally under a launcher (an argv prefix such as a user switch: the
    server refuses to run as root)."""
    try:
        proc = subprocess.run(  # noqa: S603 - argv list, no shell
            [*launcher, *argv],
            capture_output=True,
            env={**os.environ, **(env or {})},
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RecoveryFailed(f"{argv[0]} could not run: {exc}") from exc
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).decode("utf-8", errors="replace").strip()
        raise RecoveryFailed(f"pg_ctl {argv[1]} failed: {output[-2000:]}")


@dataclass(frozen=True)
class RecoveryOutcome:
    """What the server log said about a finished recovery."""

    stopped_at: str  # the "recovery stopping ..." line, or "" if it replayed everything
    promoted: bool
    log_tail: str


_READY = "database system is ready to accept connections"
_FATAL = re.compile(r"(FATAL|PANIC):\s+(.*)")


def wait_for_recovery(
    log_path: Path,
    *,
    datadir: Path,
    timeout: float = 600,
    poll: float = 0.2,
    tick: Callable[[], None] | None = None,
) -> RecoveryOutcome:
    """Follow the server log until recovery reached its target and the server promoted
    (read-write), or until it failed (a FATAL line and no postmaster any more).

    ``tick`` is called on every poll: a long replay must keep its caller's heartbeat fresh.
    """
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        with contextlib.suppress(FileNotFoundError):
            text = log_path.read_text(encoding="utf-8", errors="replace")
        stopping = [line for line in text.splitlines() if "recovery stopping" in line]
        if _READY in text and ("archive recovery complete" in text or stopping):
            return RecoveryOutcome(
                stopped_at=stopping[-1].split("LOG:", 1)[-1].strip() if stopping else "",
                promoted=True,
                log_tail=text[-4000:],
            )
        fatal = _FATAL.findall(text)
        if fatal and not (datadir / "postmaster.pid").exists():
            raise RecoveryFailed(f"recovery failed: {fatal[-1][1]}")
        time.sleep(poll)
    raise RecoveryFailed(f"recovery did not finish within {timeout:.0f} s; log: {text[-1500:]}")
