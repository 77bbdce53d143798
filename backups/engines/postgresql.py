"""PostgreSQL: pg_dump custom format; row counts and per-table checksums read from the dump
stream itself (``backups.pgdump_stream``), so nothing but pg_dump reads the database."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable

import psycopg
from psycopg import sql

from backups.pgdump_stream import DumpStream

from .base import (
    ConnectionSpec,
    Dump,
    DumpFailed,
    Engine,
    EngineError,
    FeedingReader,
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


# Tables that belong to an extension: pg_dump dumps none of their rows (CREATE EXTENSION
# makes them), except for an extension's configuration tables (pg_extension_config_dump),
# whose rows matching the extension's condition it dumps (PostGIS's spatial_ref_sys, say).
# condition: NULL for a table of the extension's own, else the WHERE clause ('' for all rows).
EXTENSION_TABLES = """
    SELECT n.nspname, c.relname,
           (SELECT coalesce(e.extcondition[array_position(e.extconfig, c.oid)], '')
            FROM pg_extension e WHERE c.oid = ANY (e.extconfig)) AS condition
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND EXISTS (
        SELECT 1 FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
"""


def extension_tables(conn: psycopg.Connection) -> dict[tuple[str, str], str | None]:
    """(schema, table) of each extension's table -> the condition of the rows pg_dump dumps
    (None: it dumps none)."""
    return {(schema, table): cond for schema, table, cond in conn.execute(EXTENSION_TABLES)}


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

    def dump_argv(self, spec: ConnectionSpec, **kw: object) -> list[str]:
        # -Z0: the pipeline compresses once, and the table data stays readable on its way
        # (row counts, checksums); custom format keeps pg_restore's selectivity.
        argv = ["pg_dump", "--format=custom", "--compress=0", "--no-password"]
        argv += self._connection_args(spec)
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
        """Rows per table as pg_dump dumps them, so that a restored copy's counts compare
        with the ones a backup read from its stream (extension tables by their rules)."""
        counts = {}
        extension = extension_tables(conn)
        for schema, table in conn.execute(USER_TABLES).fetchall():
            condition = extension.get((schema, table), "")
            if condition is None:
                continue  # an extension's own table: no row of it is in any dump
            query = sql.SQL("SELECT count(*) FROM {}.{} {}").format(
                sql.Identifier(schema), sql.Identifier(table), sql.SQL(condition)
            )
            row = conn.execute(query).fetchone()
            counts[f"{schema}.{table}"] = int(row[0]) if row else 0
        return counts

    @staticmethod
    def dump_env(spec: ConnectionSpec) -> dict[str, str]:
        """``tool_env`` plus pg_dump's session settings that its COPY text depends on and it
        does not set itself (it sets DateStyle, IntervalStyle, extra_float_digits): a fixed
        time zone and bytea format, so a table's checksum can be taken again from a
        restored copy (``copy_digests``). timestamptz values carry their offset either way."""
        options = " ".join(
            part for part in (os.environ.get("PGOPTIONS", ""), "-c bytea_output=hex") if part
        )
        return {**PostgreSQLEngine.tool_env(spec), "PGTZ": "UTC", "PGOPTIONS": options}

    def open_dump(self, spec: ConnectionSpec) -> Dump:
        """Start pg_dump; its stdout is read through a ``DumpStream`` that counts and hashes
        every table's rows as they pass (``row_counts`` and ``table_checksums`` are filled
        when the stream ends). pg_dump's own transaction makes them one consistent
        snapshot: no second connection, no exported snapshot, no count(*) beside it."""
        self.require_tools()
        try:
            env = self.dump_env(spec)  # resolves and checks the host once, for pg_dump
        except EngineError as exc:
            raise DumpFailed(str(exc)) from exc
        return _PgDump(self.dump_argv(spec), env=env, recount=lambda: self.row_counts(spec))

    def copy_digests(
        self, spec: ConnectionSpec, tables: Iterable[tuple[str, str, list[str]]], encoding: str
    ) -> dict[str, str]:
        """SHA-256 of ``COPY schema.table (columns) TO STDOUT`` per table, in the session
        pg_dump had (``dump_env`` and what pg_dump sets), keyed ``schema.table``; a table
        that cannot be read so (row security, no such table) maps to the reason instead,
        prefixed "not compared: "."""
        digests: dict[str, str] = {}
        with self.connect(spec) as conn:
            conn.autocommit = True
            if encoding:
                conn.execute(sql.SQL("SET client_encoding = {}").format(sql.Literal(encoding)))
            for statement in CHECK_SESSION:
                conn.execute(statement)
            extension = extension_tables(conn)
            for schema, table, columns in tables:
                key = f"{schema}.{table}"
                try:
                    condition = extension.get((schema, table), "") or ""
                    digests[key] = _copy_digest(conn, schema, table, columns, condition)
                except psycopg.Error as exc:
                    digests[key] = f"not compared: {str(exc).strip().splitlines()[0]}"
        return digests

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


class _PgDump(ProcessDump):
    """pg_dump whose stdout feeds a DumpStream; once pg_dump exited well (``finish``) the
    counts and checksums are published on it. When the stream could not be read (the dump
    itself is unaffected) the one fallback: count(*) after the dump, and no checksums."""

    def __init__(
        self, argv: list[str], *, env: dict[str, str], recount: Callable[[], dict[str, int]]
    ) -> None:
        super().__init__(argv, env=env)
        self.table_checksums: dict[str, dict] = {}
        self._recount = recount
        self.stream = DumpStream()
        self.stdout = FeedingReader(self.stdout, self.stream.feed)  # type: ignore[assignment]

    def finish(self) -> None:
        published = self._done
        super().finish()
        if not published:
            self._publish()

    def _publish(self) -> None:
        stream = self.stream
        stream.finish()
        if stream.problem is not None:
            # A pg_dump whose output this cannot read (a newer archive version): count after
            # the dump, outside its snapshot, so writes since may show; no checksums.
            logger.warning("no checksums, rows counted after the dump: %s", stream.problem)
            try:
                self.row_counts.update(self._recount())
            except (EngineError, psycopg.Error) as exc:
                logger.warning("could not count rows after the dump: %s", exc)
            return
        self.row_counts.update(stream.row_counts())
        for key, entry in stream.checksums().items():
            if "sha256" in entry:
                entry["encoding"] = stream.encoding
            self.table_checksums[key] = entry


# What pg_dump sets in its session (pg_dump.c setup_connection) and dump_env adds.
CHECK_SESSION = [
    "SET DateStyle = ISO",
    "SET IntervalStyle = postgres",
    "SET extra_float_digits = 3",
    "SET synchronize_seqscans = off",
    "SET row_security = off",
    "SET TimeZone = 'UTC'",
    "SET bytea_output = hex",
    "SELECT pg_catalog.set_config('search_path', '', false)",
]
# A money column's text follows lc_monetary, which nothing pins.
MONEY_COLUMNS = """
    SELECT count(*) FROM pg_attribute a
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_type b ON b.oid = t.typbasetype
    WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
      AND 'money'::regtype IN (t.oid, t.typelem, b.oid, b.typelem)
"""


def _copy_digest(
    conn: psycopg.Connection, schema: str, table: str, columns: list[str], condition: str = ""
) -> str:
    """``condition``: an extension configuration table's, whose other rows CREATE EXTENSION
    made (the dump holds only the matching ones, as pg_dump reads them: in the table's order)."""
    relation = sql.Identifier(schema, table)
    row = conn.execute(MONEY_COLUMNS, [relation.as_string(conn)]).fetchone()
    if row and row[0]:
        return "not compared: a money column's text depends on lc_monetary"
    listed = sql.SQL(", ").join(map(sql.Identifier, columns)) if columns else sql.SQL("*")
    if condition:
        query = sql.SQL("COPY (SELECT {} FROM {} {}) TO STDOUT").format(
            listed, relation, sql.SQL(condition)
        )
    else:
        query = sql.SQL("COPY {} {} TO STDOUT").format(
            relation, sql.SQL("({})").format(listed) if columns else sql.SQL("")
        )
    digest = hashlib.sha256()
    with conn.cursor().copy(query) as copy:
        for data in copy:
            digest.update(data)
    return digest.hexdigest()
