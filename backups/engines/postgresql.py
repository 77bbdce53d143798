"""PostgreSQL: pg_dump custom format, row counts taken in the very snapshot pg_dump uses."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import psycopg
from psycopg import sql

from .base import (
    ConnectionSpec,
    Dump,
    DumpFailed,
    Engine,
    EngineError,
    ProcessDump,
    resolved,
)

logger = logging.getLogger(__name__)

# spec.options keys forwarded to libpq (as PG* environment variables for the tools).
LIBPQ_OPTIONS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
}
DEFAULT_CONNECT_TIMEOUT = "10"

USER_TABLES = """
    SELECT n.nspname, c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
    ORDER BY 1, 2
"""


def _where(spec: ConnectionSpec) -> str:
    return f"PostgreSQL at {spec.host or 'localhost'}:{spec.port or 5432}, database {spec.name!r}"


TABLE_DATA_SIZE = """
SELECT coalesce(sum(pg_table_size(c.oid)), 0)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
"""


class PostgreSQLEngine(Engine):
    name = "postgresql"
    extension = "pgdump"
    tools = ("pg_dump", "pg_restore")

    # -- pure argv builders -------------------------------------------------------------------

    def dump_argv(
        self, spec: ConnectionSpec, *, snapshot: str | None = None, **kw: object
    ) -> list[str]:
        # -Z0: the pipeline compresses once; custom format keeps pg_restore's selectivity.
        argv = ["pg_dump", "--format=custom", "--compress=0", "--no-password"]
        argv += self._connection_args(spec)
        if snapshot:
            argv.append(f"--snapshot={snapshot}")
        return argv

    def restore_argv(
        self,
        spec: ConnectionSpec,
        *,
        jobs: int = 1,
        path: str | None = None,
        owners: bool = False,
        privileges: bool = False,
        sections: tuple[str, ...] = (),
        **kw: object,
    ) -> list[str]:
        # Owners and GRANTs only when asked: they fail unless every role the dump names exists
        # on the target server (restores.pg_access decides).
        argv = ["pg_restore"]
        if not owners:
            argv.append("--no-owner")
        if not privileges:
            argv.append("--no-privileges")
        argv += ["--no-password", "--exit-on-error"]
        argv += self._connection_args(spec)
        argv += [f"--section={section}" for section in sections]
        if jobs > 1:
            argv.append(f"--jobs={jobs}")
        else:
            # All or nothing: a failed restore leaves the target as empty as it was.
            argv.append("--single-transaction")
        if path:
            argv.append(path)
        return argv

    @staticmethod
    def schema_argv(path: str | None = None) -> list[str]:
        """pg_restore printing a dump's schema as SQL (owners and GRANTs included), no server.

        From a pipe it reads the header and table of contents and stops: no table data.
        """
        return ["pg_restore", "--schema-only", "--file=-", *([path] if path else [])]

    @staticmethod
    def _connection_args(spec: ConnectionSpec) -> list[str]:
        args = []
        if spec.host:
            args.append(f"--host={spec.host}")
        if spec.port:
            args.append(f"--port={spec.port}")
        if spec.user:
            args.append(f"--username={spec.user}")
        args.append(f"--dbname={spec.name}")
        return args

    @staticmethod
    def tool_env(spec: ConnectionSpec) -> dict[str, str]:
        """Secrets and libpq options for the tools: environment, never argv. PGHOSTADDR is
        the checked address (``--host`` stays the name, for TLS verification)."""
        spec = resolved(spec)
        env = {"PGCONNECT_TIMEOUT": DEFAULT_CONNECT_TIMEOUT}
        if spec.hostaddr:
            env["PGHOSTADDR"] = spec.hostaddr
        if spec.password:
            env["PGPASSWORD"] = spec.password
        for key, var in LIBPQ_OPTIONS.items():
            if key in spec.options:
                env[var] = spec.options[key]
        return env

    # -- server side --------------------------------------------------------------------------

    def connect(self, spec: ConnectionSpec, *, dbname: str | None = None) -> psycopg.Connection:
        """A psycopg connection, errors turned into an operator-readable EngineError."""
        spec = resolved(spec)
        params: dict[str, object] = {
            "dbname": dbname or spec.name,
            "connect_timeout": int(spec.options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
        }
        if spec.host:
            params["host"] = spec.host
        if spec.hostaddr:
            params["hostaddr"] = spec.hostaddr
        if spec.port:
            params["port"] = spec.port
        if spec.user:
            params["user"] = spec.user
        if spec.password:
            params["password"] = spec.password
        for key in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
            if key in spec.options:
                params[key] = spec.options[key]
        try:
            return psycopg.connect(**params)  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise EngineError(f"cannot connect to {_where(spec)} as {spec.user!r}: {exc}") from exc

    def check_connection(self, spec: ConnectionSpec) -> None:
        with self.connect(spec) as conn:
            conn.execute("SELECT 1")

    def server_version(self, spec: ConnectionSpec) -> str:
        with self.connect(spec) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        # "15.20 (Debian 15.20-0+deb12u1)" -> "15.20"
        return str(row[0]).split()[0] if row else ""

    def estimate_size(self, spec: ConnectionSpec) -> int | None:
        # The dump holds table rows, not indexes or catalogs: the user tables' heap and TOAST
        # size is a far closer estimate of its raw size than pg_database_size().
        with self.connect(spec) as conn:
            row = conn.execute(TABLE_DATA_SIZE).fetchone()
        return int(row[0]) if row else None

    def row_counts(self, spec: ConnectionSpec) -> dict[str, int]:
        with self.connect(spec) as conn:
            return self._count_rows(conn)

    @staticmethod
    def _count_rows(conn: psycopg.Connection) -> dict[str, int]:
        counts = {}
        for schema, table in conn.execute(USER_TABLES).fetchall():
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            row = conn.execute(query).fetchone()
            counts[f"{schema}.{table}"] = int(row[0]) if row else 0
        return counts

    def open_dump(self, spec: ConnectionSpec) -> Dump:
        """Start pg_dump on a snapshot exported by a transaction that also counts the rows.

        The transaction stays open until pg_dump has finished (finish/kill close it), so the
        counts describe exactly the data in the dump even while the database is being
        written. Counting scans every table, so it runs in that transaction on a thread
        while pg_dump streams, not before it: the dump does not wait for the counts.
        """
        self.require_tools()
        try:
            spec = resolved(spec)  # one check: the counting connection and pg_dump agree
            conn = self.connect(spec)
        except EngineError as exc:
            raise DumpFailed(str(exc)) from exc
        try:
            # psycopg opens the transaction itself before the first statement; an explicit
            # BEGIN after it made the server log "there is already a transaction in
            # progress" on every dump. The transaction's characteristics are set instead.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            row = conn.execute("SELECT pg_export_snapshot()").fetchone()
            snapshot = str(row[0]) if row else None
        except psycopg.Error as exc:
            conn.close()
            raise DumpFailed(f"cannot take a snapshot of {_where(spec)}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        counter = _RowCounter(conn, self._count_rows)
        try:
            dump = ProcessDump(
                self.dump_argv(spec, snapshot=snapshot),
                env=self.tool_env(spec),
                row_counts=counter.counts,
                cleanups=[conn.close, lambda: counter.stop(cancel=dump._killed)],
            )
        except BaseException:
            conn.close()
            raise
        counter.start()
        return dump

    def create_database(self, spec: ConnectionSpec) -> None:
        self._maintenance(spec, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(spec.name)))

    def drop_database(self, spec: ConnectionSpec) -> None:
        # FORCE: a scratch database may still hold a connection from an aborted restore.
        query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(spec.name))
        self._maintenance(spec, query)

    def _maintenance(self, spec: ConnectionSpec, query: sql.Composed) -> None:
        maintenance_db = spec.options.get("maintenance_db", "postgres")
        conn = self.connect(spec, dbname=maintenance_db)
        try:
            conn.autocommit = True
            conn.execute(query)
        except psycopg.Error as exc:
            raise EngineError(f"{query.as_string(conn)} failed on {_where(spec)}: {exc}") from exc
        finally:
            conn.close()


class _RowCounter:
    """Counts rows in the exporting transaction while pg_dump reads the same snapshot."""

    def __init__(self, conn: psycopg.Connection, count: Callable[[psycopg.Connection], dict]):
        self.conn = conn
        self.counts: dict[str, int] = {}
        self._count = count
        self._thread = threading.Thread(target=self._run, name="pg-row-counts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self.counts.update(self._count(self.conn))
        except psycopg.Error as exc:
            # The dump is still good without counts; a later comparison says "not recorded".
            logger.warning("could not count rows in the dump's snapshot: %s", exc)

    def stop(self, *, cancel: bool) -> None:
        """Wait for the counts (after a good dump) or cancel them (after a kill)."""
        if cancel and self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.conn.cancel_safe()
        self._thread.join()
