"""Restore to a timestamp into a new data directory."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from backups.engines import postgresql_physical as physical
from backups.keys import key_for_id
from backups.models import Backup, CopyStatus
from backups.pipeline import open_artifact
from backups.pitr.archive import configured_pg_bin, require_postgresql
from backups.pitr.coverage import iso, pitr_check_target
from config.errors import Unprocessable
from destinations.storage import open_artifact_stream
from organizations.models import Database

logger = logging.getLogger(__name__)


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
    launcher: tuple[str, ...] | list[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> PitrRestoreResult:
    """Recover ``database``'s cluster as of ``target`` into a NEW data directory and start
    it on ``port``; returns once recovery reached the target and the server promoted.

    The server is left running (stop it with ``pg_ctl stop -D datadir``). ``launcher`` is
    an argv prefix for pg_ctl (the server refuses to run as root); ``env`` is added to the
    server's environment, which its restore_command (``fetch_wal``) inherits.
    """
    require_postgresql(database)
    window = pitr_check_target(database=database, target=target)
    base = window.base
    datadir = Path(datadir)
    started = time.monotonic()
    _extract_base(base, datadir)
    major = (datadir / "PG_VERSION").read_text().strip()
    pg_bin = physical.pg_bin_dir(major, configured=configured_pg_bin())
    socket_dir = str(socket_dir or datadir.parent)
    settings_text = physical.recovery_settings(
        restore_command=physical.restore_command(fetch_wal_argv(database)),
        target_time=target,
        port=port,
        socket_dir=socket_dir,
    )
    physical.write_recovery_config(datadir, settings_text)
    log_path = datadir.parent / f"{datadir.name}.recovery.log"
    physical.run_pg_ctl(
        physical.pg_ctl_argv("start", datadir, pg_bin=pg_bin, log_path=log_path),
        launcher=launcher,
        env=env,
    )
    try:
        outcome = physical.wait_for_recovery(log_path, datadir=datadir, timeout=timeout)
    except physical.RecoveryFailed:
        # A recovery that timed out leaves a server behind; one that failed has none.
        with contextlib.suppress(physical.RecoveryFailed):
            pitr_stop(datadir=datadir, launcher=launcher, mode="immediate")
        raise
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
    *, datadir: str | Path, launcher: tuple[str, ...] | list[str] = (), mode: str = "fast"
) -> None:
    """Stop a cluster pitr_restore started (if it still runs)."""
    datadir = Path(datadir)
    if not (datadir / "postmaster.pid").exists():
        return
    major = (datadir / "PG_VERSION").read_text().strip()
    pg_bin = physical.pg_bin_dir(major, configured=configured_pg_bin())
    physical.run_pg_ctl(
        physical.pg_ctl_argv("stop", datadir, pg_bin=pg_bin, mode=mode), launcher=launcher
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
            with open_artifact_stream(copy.destination, copy.key) as raw:
                hashing = _Hashing(raw)
                physical.extract_base_backup(open_artifact(hashing, key_for=key_for_id), datadir)
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
