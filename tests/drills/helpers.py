"""Helpers for drill tests: run a drill in this process, ask a server whether a throwaway
database is still there, find a drill's loaders, look for plaintext in files."""

from __future__ import annotations

import os
from pathlib import Path

from backups.engines import ConnectionSpec
from backups.engines.mysql import MySQLEngine
from backups.engines.postgresql import PostgreSQLEngine
from drills.models import Drill
from drills.services import drill_claim, drill_execute, drill_request


def run_drill_now(**request) -> Drill:
    """Request a drill and run it in this process, as a worker would."""
    drill = drill_request(enqueue=False, **request)
    claimed = drill_claim(drill_id=drill.id)
    assert claimed is not None
    return drill_execute(drill=claimed)


def database_exists(server: ConnectionSpec, name: str) -> bool:
    """Whether the server (PostgreSQL, MariaDB) or the file system holds ``name``."""
    if server.engine == "postgresql":
        with PostgreSQLEngine().connect(server, dbname="postgres") as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return row.fetchone() is not None
    if server.engine in ("mysql", "mariadb"):
        conn = MySQLEngine(server.engine).connect(server, database="")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,)
                )
                return cur.fetchone() is not None
        finally:
            conn.close()
    return os.path.lexists(name)


def loader_groups(name: str, tools: tuple[bytes, ...] = (b"pg_restore",)) -> list[int]:
    """Process groups of the loaders (one of ``tools``) loading into the database ``name``;
    a loader runs in a process group of its own, apart from its worker's."""
    groups = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" or not argv or not argv[0].endswith(tools):
            continue
        if b"--schema-only" not in argv and any(name.encode() in arg for arg in argv):
            groups.append(int(fields[2]))
    return sorted(set(groups))


def files_holding(root: Path, *needles: bytes) -> list[str]:
    """Every file under ``root`` that holds one of ``needles`` (read whole: test sizes)."""
    found = []
    for path in root.rglob("*") if root.exists() else []:
        if path.is_file() and not path.is_symlink():
            try:
                data = path.read_bytes()
            except OSError:
                continue
            found += [f"{path}: {needle!r}" for needle in needles if needle in data]
    return found
