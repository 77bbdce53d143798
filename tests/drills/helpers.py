"""Helpers for drill tests: run a drill in this process, and ask a server whether a
throwaway database is still there."""

from __future__ import annotations

import os

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
