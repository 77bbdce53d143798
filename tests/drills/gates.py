"""What the drill tests use to hold a worker in one phase of a drill without timing: read
the drill server (is the loader connected, is a query waiting on a lock) and hold a gate
(a lock the phase must wait for). See ``test_drill_worker_killed.py``."""

from __future__ import annotations

import os
import signal
import uuid

from psycopg import sql

from backups.engines.mysql import CLIENT_TOOLS, MySQLEngine
from backups.engines.postgresql import PostgreSQLEngine
from drills.models import Drill, DrillPhase
from tests.drills.helpers import loader_groups
from tests.fixtures.databases import (
    TABLES,
    fill_mariadb,
    fill_postgres,
    mariadb_server,
    postgres_server,
)
from tests.fixtures.worker import Worker, wait_for

SECRET_ROWS = 50_000
ALL_TABLES = (*TABLES, "secrets")


class PostgresGates:
    """How the test reads and holds a PostgreSQL drill server."""

    loaders = (b"pg_restore",)
    server = staticmethod(postgres_server)
    count_waits = "%count(*)%zz_gate%"
    drop_waits = "DROP DATABASE%{throwaway}%"

    def fill(self, spec, marker: str) -> int:
        counts = fill_postgres(spec, rows=300)
        with PostgreSQLEngine().connect(spec) as conn:
            conn.execute(
                "CREATE TABLE secrets AS SELECT i AS id, %s || '-' || md5(i::text) AS payload"
                " FROM generate_series(1, %s) i",
                (marker, SECRET_ROWS),
            )
            conn.execute("ALTER TABLE secrets ADD PRIMARY KEY (id)")
        return sum(counts.values()) + SECRET_ROWS

    def _shows(self, query: str, *params) -> bool:
        with PostgreSQLEngine().connect(postgres_server("postgres")) as conn:
            return conn.execute(query, params).fetchone() is not None

    def waiting(self, pattern: str) -> bool:
        """A query like ``pattern`` waits on a lock (the worker's, held by a gate)."""
        return self._shows(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE %s",
            pattern,
        )

    def hold_the_count(self, throwaway: str):
        """A table of the test's own in the throwaway database, locked: the count waits."""
        conn = PostgreSQLEngine().connect(postgres_server(throwaway))
        conn.execute("CREATE TABLE zz_gate (id integer)")
        conn.commit()
        conn.execute("LOCK TABLE zz_gate IN ACCESS EXCLUSIVE MODE")
        return conn

    def hold_the_drop(self, throwaway: str):
        """An uncommitted COMMENT ON DATABASE: its lock on the database (SHARE UPDATE
        EXCLUSIVE) lets connections in and makes DROP DATABASE wait until it ends."""
        conn = PostgreSQLEngine().connect(postgres_server("postgres"))
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS 'gate'").format(sql.Identifier(throwaway)))
        return conn

    def release(self, conn) -> None:
        conn.rollback()
        conn.close()


class MariaDBGates(PostgresGates):
    """The same on MariaDB, with its metadata locks."""

    loaders = tuple(tool.encode() for tool in CLIENT_TOOLS)
    server = staticmethod(mariadb_server)
    count_waits = "%COUNT(*)%zz_gate%"

    def fill(self, spec, marker: str) -> int:
        counts = fill_mariadb(spec, rows=300)
        values = [(i, f"{marker}-{uuid.uuid4().hex}") for i in range(1, SECRET_ROWS + 1)]
        conn = MySQLEngine("mariadb").connect(spec)
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE TABLE secrets (id INT PRIMARY KEY, payload TEXT)")
                cur.executemany("INSERT INTO secrets VALUES (%s, %s)", values)
            conn.commit()
        finally:
            conn.close()
        return sum(counts.values()) + SECRET_ROWS

    def _shows(self, query: str, *params) -> bool:
        conn = MySQLEngine("mariadb").connect(mariadb_server(), database="")
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchone() is not None
        finally:
            conn.close()

    def waiting(self, pattern: str) -> bool:
        return self._shows(
            "SELECT 1 FROM information_schema.processlist"
            " WHERE state LIKE 'Waiting for%%lock%%' AND info LIKE %s",
            pattern,
        )

    def _gate(self, throwaway: str):
        conn = MySQLEngine("mariadb").connect(mariadb_server(throwaway))
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE zz_gate (id INT)")
        conn.commit()
        return conn

    def hold_the_count(self, throwaway: str):
        """A table of the test's own, write-locked: the count waits for its metadata lock."""
        conn = self._gate(throwaway)
        with conn.cursor() as cur:
            cur.execute("LOCK TABLES zz_gate WRITE")
        return conn

    def hold_the_drop(self, throwaway: str):
        """A transaction that read the test's table holds its shared metadata lock: the
        count reads the table too, DROP DATABASE waits for the lock."""
        conn = self._gate(throwaway)
        with conn.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("SELECT * FROM zz_gate")
        return conn

    def release(self, conn) -> None:
        with conn.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        conn.rollback()
        conn.close()


def hold_in(phase: str, gates: PostgresGates, drill: Drill, worker: Worker):
    """Hold the worker running ``drill`` in ``phase``: the loader is stopped as soon as it
    runs (the load cannot end), the phase's gate set, the loader let go, and this returns
    once the drill recorded the phase and its query waits on the gate. Returns the gate's
    connection (None for the restoring phase: the loader stays stopped).

    The one thing timed is catching the loader while it runs (looked for every 20 ms): the
    sources ``fill`` makes (a 50,000-row table) keep it running for a second or more."""
    throwaway = f"strongbox_drill_{drill.short_id}"
    (loader,) = wait_for(
        lambda: loader_groups(throwaway, gates.loaders),
        timeout=120,
        interval=0.02,
        message=lambda: f"the load to start; worker log:\n{worker.output()[-3000:]}",
    )
    os.killpg(loader, signal.SIGSTOP)
    assert Drill.objects.get(pk=drill.pk).phase == DrillPhase.RESTORING
    if phase == DrillPhase.RESTORING:
        return None
    hold, pattern = {
        DrillPhase.COMPARING: (gates.hold_the_count, gates.count_waits),
        DrillPhase.DROPPING: (gates.hold_the_drop, gates.drop_waits),
    }[phase]
    gate = hold(throwaway)
    os.killpg(loader, signal.SIGCONT)
    wait_for(
        lambda: (
            Drill.objects.get(pk=drill.pk).phase == phase
            and gates.waiting(pattern.format(throwaway=throwaway))
        ),
        timeout=120,
        interval=0.05,
        message=lambda: f"the drill to wait in {phase}; log:\n{worker.output()[-3000:]}",
    )
    return gate
