"""Restore to a timestamp into a new data directory, and the private recovered copy the
restore flow dumps a database from (``recovered_copy``)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from backups.engines import ConnectionSpec
from backups.keys import artifact_keys
from backups.models import Backup, CopyStatus
from backups.pipeline import open_artifact
from config.errors import Unprocessable
from destinations.backends import backend_for
from destinations.storage import open_artifact_stream
from organizations.models import Database
from pitr import physical
from pitr.archive import configured_pg_bin, require_postgresql
from pitr.coverage import iso, pitr_check_target
from pitr.wal_spool import PREFETCH_ENV

logger = logging.getLogger(__name__)

# A recovered copy listens on a socket in its own private directory, so any port will do.
PRIVATE_PORT = 5432


# --- running the server ---------------------------------------------------------------------


def server_launcher() -> tuple[str, ...]:
    """The argv prefix pg_ctl runs under.

    PostgreSQL refuses to run as root. A worker running as root starts the recovered copy in
    a user namespace where it is an ordinary user (``unshare --map-user``): its files stay
    the worker's, and its restore_command still reads the worker's database and artifacts.
    ``STRONGBOX_PITR_LAUNCHER`` overrides this (e.g. an empty worker user needs none).
    """
    configured = settings.STRONGBOX_PITR_LAUNCHER
    if configured:
        return tuple(shlex.split(configured))
    if os.geteuid() != 0:
        return ()
    unshare = shutil.which("unshare")
    if unshare is None:
        raise physical.RecoveryFailed(
            "the worker runs as root, which PostgreSQL refuses, and `unshare` (util-linux) is "
            "missing: run the worker as another user or set STRONGBOX_PITR_LAUNCHER"
        )
    # initdb and the server look their user up by uid: map to one /etc/passwd knows.
    users = [u for u in pwd.getpwall() if u.pw_uid != 0]
    user = next((u for u in users if u.pw_name == "postgres"), users[0] if users else None)
    if user is None:
        raise physical.RecoveryFailed(
            "the worker runs as root, which PostgreSQL refuses, and no other user exists to "
            "run the recovered server as; set STRONGBOX_PITR_LAUNCHER"
        )
    return (unshare, "--user", f"--map-user={user.pw_uid}", f"--map-group={user.pw_gid}")


def recovery_timeout() -> float:
    return float(settings.STRONGBOX_PITR_TIMEOUT_SECONDS)


# --- restore ----------------------------------------------------------------------------------


def fetch_wal_argv(database: Database) -> list[str]:
    """The restore_command PostgreSQL runs (through a shell) to get one WAL file."""
    manage = Path(settings.BASE_DIR) / "manage.py"
    return [sys.executable, str(manage), "fetch_wal", "--database", str(database.id), "%f", "%p"]


@dataclass
class PitrRestoreResult:
    database: Database
    base_backup: Backup
    target: datetime
    datadir: Path
    port: int
    stopped_at: str
    seconds: float
    log_path: Path

    def as_dict(self) -> dict:
        return {
            "databaseId": str(self.database.id),
            "baseBackupId": str(self.base_backup.id),
            "target": iso(self.target),
            "dataDirectory": str(self.datadir),
            "port": self.port,
            "stoppedAt": self.stopped_at,
            "seconds": round(self.seconds, 1),
            "log": str(self.log_path),
        }


def pitr_restore(
    *,
    database: Database,
    target: datetime,
    datadir: str | Path,
    port: int,
    socket_dir: str | Path | None = None,
    launcher: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    local_only: bool = False,
    tick: Callable[[], None] | None = None,
) -> PitrRestoreResult:
    """Recover ``database``'s cluster as of ``target`` into a NEW data directory and start
    it on ``port``; returns once recovery reached the target and the server promoted.

    The server is left running (stop it with ``pitr_stop``). ``launcher`` is an argv prefix
    for pg_ctl (default ``server_launcher()``); ``env`` is added to the server's
    environment, which its restore_command (``fetch_wal``) inherits. ``local_only`` makes it
    listen on no TCP address and trust connections over its socket, which must then be in
    a directory only the worker can enter. ``tick`` is called while recovery replays.
    """
    require_postgresql(database)
    window = pitr_check_target(database=database, target=target)
    base = window.base
    datadir = Path(datadir)
    launcher = server_launcher() if launcher is None else tuple(launcher)
    started = time.monotonic()
    check_room(base, datadir.parent)
    _extract_base(base, datadir)
    major = (datadir / "PG_VERSION").read_text().strip()
    pg_bin = physical.pg_bin_dir(major, configured=configured_pg_bin())
    socket_dir = str(socket_dir or datadir.parent)
    # A cluster whose configuration lives outside its data directory (Debian's
    # /etc/postgresql) arrives without one: the server's defaults and ours will do.
    (datadir / "postgresql.conf").touch()
    extra = {}
    if local_only:
        physical.write_local_trust_hba(datadir)
        extra["hba_file"] = str(datadir / "pg_hba.conf")
    elif not (datadir / "pg_hba.conf").exists():
        # Kept outside the data directory too: PostgreSQL's usual local rules.
        physical.write_default_hba(datadir)
        extra["hba_file"] = str(datadir / "pg_hba.conf")
    settings_text = physical.recovery_settings(
        restore_command=physical.restore_command(fetch_wal_argv(database)),
        target_time=target,
        port=port,
        socket_dir=socket_dir,
        listen_addresses="" if local_only else "localhost",
        extra=extra,
    )
    physical.write_recovery_config(datadir, settings_text)
    log_path = datadir.parent / f"{datadir.name}.recovery.log"
    # fetch_wal downloads the next segments here, and hands them over without Django.
    prefetch = datadir.parent / f".{datadir.name}.wal-prefetch"
    physical.run_pg_ctl(
        physical.pg_ctl_argv("start", datadir, pg_bin=pg_bin, log_path=log_path),
        launcher=launcher,
        env={**(env or {}), PREFETCH_ENV: str(prefetch)},
    )
    try:
        outcome = physical.wait_for_recovery(log_path, datadir=datadir, timeout=timeout, tick=tick)
    except physical.RecoveryFailed:
        # A recovery that timed out leaves a server behind; one that failed has none.
        with contextlib.suppress(physical.RecoveryFailed):
            pitr_stop(datadir=datadir, launcher=launcher, mode="immediate")
        raise
    finally:
        shutil.rmtree(prefetch, ignore_errors=True)
    return PitrRestoreResult(
        database=database,
        base_backup=base,
        target=target,
        datadir=datadir,
        port=port,
        stopped_at=outcome.stopped_at,
        seconds=time.monotonic() - started,
        log_path=log_path,
    )


def pitr_stop(
    *, datadir: str | Path, launcher: Sequence[str] | None = None, mode: str = "fast"
) -> None:
    """Stop a cluster pitr_restore started (if it still runs)."""
    datadir = Path(datadir)
    if not (datadir / "postmaster.pid").exists():
        return
    major = (datadir / "PG_VERSION").read_text().strip()
    pg_bin = physical.pg_bin_dir(major, configured=configured_pg_bin())
    physical.run_pg_ctl(
        physical.pg_ctl_argv("stop", datadir, pg_bin=pg_bin, mode=mode),
        launcher=server_launcher() if launcher is None else tuple(launcher),
    )


# --- a private recovered copy, for the restore flow ------------------------------------------


@dataclass
class RecoveredCopy:
    """A running recovered cluster and how to reach ``database`` in it."""

    result: PitrRestoreResult
    spec: ConnectionSpec


def recovered_copy_dir(parent: str | Path, tag: str) -> Path:
    return Path(parent) / f"pitr-{tag}"


@contextlib.contextmanager
def recovered_copy(
    *,
    database: Database,
    target: datetime,
    workdir: Path,
    spec: ConnectionSpec,
    tick: Callable[[], None] | None = None,
    timeout: float | None = None,
) -> Iterator[RecoveredCopy]:
    """Recover ``database``'s cluster as of ``target`` into ``workdir`` and yield it while it
    runs; it is stopped and ``workdir`` removed on the way out, whatever happened.

    The copy listens on no TCP address, only on a socket in a fresh private directory (mode
    0700, in the system's temporary directory: a socket path must fit in 107 bytes), and
    trusts that socket, so it is reached as the database's own user without its password.
    ``spec`` is how the database is reached normally; the yielded spec points the same user
    and database name at the copy.
    """
    discard_recovered_copy(workdir)
    workdir.mkdir(mode=0o700, parents=True)
    socket_dir = Path(tempfile.mkdtemp(prefix="strongbox-pitr-"))
    try:
        result = pitr_restore(
            database=database,
            target=target,
            datadir=workdir / "data",
            port=PRIVATE_PORT,
            socket_dir=socket_dir,
            timeout=recovery_timeout() if timeout is None else timeout,
            local_only=True,
            tick=tick,
        )
        copy = replace(spec, host=str(socket_dir), port=PRIVATE_PORT, password="", options={})
        yield RecoveredCopy(result=result, spec=copy)
    finally:
        discard_recovered_copy(workdir)
        shutil.rmtree(socket_dir, ignore_errors=True)


def discard_recovered_copy(workdir: Path) -> None:
    """Stop a recovered copy (if it runs) and remove its directory; best effort."""
    if not workdir.exists():
        return
    try:
        pitr_stop(datadir=workdir / "data", mode="immediate")
    except Exception:  # noqa: BLE001 - removing it matters more; a stale server dies with its files
        logger.exception("could not stop the recovered copy in %s", workdir)
    shutil.rmtree(workdir, ignore_errors=True)


# Beyond the cluster itself: WAL PostgreSQL keeps while replaying and the prefetched segments.
RECOVERY_HEADROOM = 1 << 30


def check_room(base: Backup, directory: Path) -> None:
    """Refuse before extracting when the file system cannot hold the recovered cluster (the
    base backup's uncompressed size) with some WAL: a full disk half-way helps nobody."""
    directory.mkdir(parents=True, exist_ok=True)
    needed = (base.bytes_done or base.size or 0) + RECOVERY_HEADROOM
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise physical.RecoveryFailed(
            f"recovering needs about {needed / 1e9:.1f} GB in {directory} (the cluster of base "
            f"backup {base.name} and its WAL) and {free / 1e9:.1f} GB are free; free some "
            "space or point STRONGBOX_TMP_DIR at a larger file system"
        )


class _Hashing:
    """Hashes what is read through it (the stored artifact, before decryption)."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return self.digest.hexdigest()


def _extract_base(base: Backup, datadir: Path) -> None:
    """Unpack the base backup from the first copy that reads back intact."""
    if datadir.exists() and any(datadir.iterdir()):
        raise physical.RecoveryFailed(f"{datadir} is not empty; a restore needs a new directory")
    copies = base.copies.select_related("destination").filter(status=CopyStatus.STORED)
    problems = []
    for copy in copies:
        try:
            with open_artifact_stream(backend_for(copy.destination), copy.key) as raw:
                hashing = _Hashing(raw)
                physical.extract_base_backup(
                    open_artifact(hashing, **artifact_keys(base.organisation, base.key_id)), datadir
                )
                if hashing.drain() != base.checksum_sha256:
                    raise physical.RecoveryFailed("checksum mismatch")
            return
        except Exception as exc:  # noqa: BLE001 - try the next copy
            problems.append(f"{copy.destination.name}: {exc}")
            shutil.rmtree(datadir, ignore_errors=True)
    raise Unprocessable(
        f"Base backup {base.name} could not be read from any destination: "
        + ("; ".join(problems) or "no stored copy left")
        + "."
    )
