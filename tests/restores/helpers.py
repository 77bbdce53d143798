"""Helpers for restore tests: run a restore in-process, and look for scratch leftovers."""

from __future__ import annotations

from pathlib import Path

from backups.engines import ConnectionSpec
from backups.engines.mysql import MySQLEngine
from backups.engines.postgresql import PostgreSQLEngine
from destinations.backends import backend_for
from restores.models import Restore
from restores.services import restore_claim, restore_execute, restore_request


def run_restore_now(**request) -> Restore:
    """Request a restore and run it in this process, as a worker would."""
    restore = restore_request(enqueue=False, **request)
    claimed = restore_claim(restore_id=restore.id)
    assert claimed is not None
    return restore_execute(restore=claimed)


def leftovers(spec: ConnectionSpec) -> list[str]:
    """Scratch or set-aside databases (or files) a restore of ``spec`` left behind."""
    if spec.engine == "postgresql":
        with PostgreSQLEngine().connect(spec, dbname="postgres") as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s",
                (spec.name + "\\_sbx\\_%",),
            ).fetchall()
        return [row[0] for row in rows]
    if spec.engine in ("mysql", "mariadb"):
        conn = MySQLEngine(spec.engine).connect(spec, database="")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                    (spec.name + "\\_sbx\\_%",),
                )
                return [row[0] for row in cur.fetchall()]
        finally:
            conn.close()
    path = Path(spec.name)
    return sorted(p.name for p in path.parent.glob(f".{path.name}.sbx-*"))


def artifact_path(backup) -> Path:
    copy = backup.copies.get()
    return Path(backend_for(copy.destination).storage().path(copy.key))


def flip_a_byte(backup, offset: int | None = None) -> None:
    path = artifact_path(backup)
    data = bytearray(path.read_bytes())
    position = len(data) // 2 if offset is None else offset
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))
