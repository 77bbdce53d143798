"""MySQL and MariaDB: mariadb-dump (or mysqldump) in one transaction, restored by the client
(``restores.loading`` runs it with ``restore_argv``).

Row counts are read from the dump stream itself (``mysql_rows.DumpRowCounter``) as it passes
to the pipeline: the server cannot share the dump's snapshot with another session, so a
COUNT(*) of our own, before or after, disagrees with the dump's data while the database is
written (and scans every table a second time). A stream the counter does not understand
falls back to COUNT(*) in a consistent snapshot after the dump, with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable

import pymysql

from .base import (
    ConnectionSpec,
    Dump,
    DumpFailed,
    Engine,
    EngineError,
    EngineUnavailable,
    FeedingReader,
    ProcessDump,
    resolved,
)
from .mysql_rows import DumpRowCounter

logger = logging.getLogger(__name__)

DUMP_TOOLS = ("mariadb-dump", "mysqldump")
CLIENT_TOOLS = ("mariadb", "mysql")
DEFAULT_CONNECT_TIMEOUT = 10


def _where(spec: ConnectionSpec) -> str:
    return (
        f"{spec.engine} at {spec.host or 'localhost'}:{spec.port or 3306}, database {spec.name!r}"
    )


def _option_value(value: str) -> str:
    # Option files unescape \\, \" and \n inside double quotes.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def write_defaults_file(spec: ConnectionSpec, directory: str | None = None) -> str:
    """A 0600 option file carrying the password, for --defaults-extra-file. Caller deletes it."""
    fd, path = tempfile.mkstemp(prefix="strongbox-my-", suffix=".cnf", dir=directory)
    # mkstemp creates the file 0600 already; the password never reaches argv or the environment.
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("[client]\n")
        fh.write(f"password={_option_value(spec.password)}\n")
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _first_available(tools: tuple[str, ...]) -> str | None:
    return next((tool for tool in tools if shutil.which(tool)), None)


class MySQLEngine(Engine):
    """Serves both "mysql" and "mariadb"; the tools are the same family."""

    extension = "sql"

    def __init__(self, name: str = "mysql") -> None:
        self.name = name

    def missing_tools(self) -> list[str]:
        missing = []
        if _first_available(DUMP_TOOLS) is None:
            missing.append(" or ".join(DUMP_TOOLS))
        if _first_available(CLIENT_TOOLS) is None:
            missing.append(" or ".join(CLIENT_TOOLS))
        return missing

    # -- pure argv builders -------------------------------------------------------------------

    def dump_argv(
        self,
        spec: ConnectionSpec,
        *,
        tool: str = "mariadb-dump",
        defaults_file: str | None = None,
        **kw: object,
    ) -> list[str]:
        argv = [tool]
        if defaults_file:
            argv.append(f"--defaults-extra-file={defaults_file}")  # must come first
        argv += self._connection_args(spec)
        argv += [
            "--single-transaction",
            "--quick",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--default-character-set=utf8mb4",
            # No CREATE DATABASE/USE: the dump must load into whatever database we restore to.
            spec.name,
        ]
        return argv

    def restore_argv(
        self,
        spec: ConnectionSpec,
        *,
        tool: str = "mariadb",
        defaults_file: str | None = None,
        **kw: object,
    ) -> list[str]:
        argv = [tool]
        if defaults_file:
            argv.append(f"--defaults-extra-file={defaults_file}")
        argv += self._connection_args(spec)
        # mariadb-dump has no --connect-timeout; the client does.
        argv += [
            f"--connect-timeout={DEFAULT_CONNECT_TIMEOUT}",
            "--default-character-set=utf8mb4",
            "--batch",
            spec.name,
        ]
        return argv

    @staticmethod
    def _connection_args(spec: ConnectionSpec) -> list[str]:
        spec = resolved(spec)
        args = []
        if spec.hostaddr or spec.host:
            # The checked address: the client must not resolve the name again.
            args.append(f"--host={spec.hostaddr or spec.host}")
        if spec.port:
            args.append(f"--port={spec.port}")
        if spec.user:
            args.append(f"--user={spec.user}")
        return args

    # -- server side --------------------------------------------------------------------------

    def connect(self, spec: ConnectionSpec, *, database: str | None = None) -> pymysql.Connection:
        """A PyMySQL connection, errors turned into an operator-readable EngineError."""
        spec = resolved(spec)
        try:
            return pymysql.connect(
                host=spec.hostaddr or spec.host or "localhost",
                port=spec.port or 3306,
                user=spec.user or None,
                password=spec.password,
                database=spec.name if database is None else (database or None),
                charset="utf8mb4",
                connect_timeout=DEFAULT_CONNECT_TIMEOUT,
                autocommit=True,
            )
        except pymysql.Error as exc:
            raise EngineError(f"cannot connect to {_where(spec)} as {spec.user!r}: {exc}") from exc

    def check_connection(self, spec: ConnectionSpec) -> None:
        self.connect(spec).close()

    def server_version(self, spec: ConnectionSpec) -> str:
        conn = self.connect(spec)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                row = cur.fetchone()
        finally:
            conn.close()
        # "10.11.19-MariaDB-0+deb12u1" -> "10.11.19-MariaDB"; MySQL prints "8.0.36".
        return "-".join(str(row[0]).split("-")[:2]) if row else ""

    def estimate_size(self, spec: ConnectionSpec) -> int | None:
        conn = self.connect(spec)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT SUM(data_length + index_length) FROM information_schema.tables"
                    " WHERE table_schema = %s",
                    (spec.name,),
                )
                row = cur.fetchone()
        finally:
            conn.close()
        return int(row[0]) if row and row[0] is not None else 0

    def row_counts(self, spec: ConnectionSpec) -> dict[str, int]:
        conn = self.connect(spec)
        try:
            return self._count_rows(conn, spec.name)
        finally:
            conn.close()

    @staticmethod
    def _count_rows(conn: pymysql.Connection, database: str) -> dict[str, int]:
        counts = {}
        with conn.cursor() as cur:
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            cur.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
                (database,),
            )
            tables = [row[0] for row in cur.fetchall()]
            for table in tables:
                quoted = "`" + table.replace("`", "``") + "`"
                cur.execute(f"SELECT COUNT(*) FROM {quoted}")  # noqa: S608 - quoted identifier
                counts[table] = int(cur.fetchone()[0])
            cur.execute("COMMIT")
        return counts

    def open_dump(self, spec: ConnectionSpec) -> Dump:
        tool = _first_available(DUMP_TOOLS)
        if tool is None:
            raise EngineUnavailable(
                "neither mariadb-dump nor mysqldump is installed on this worker; "
                f"install the MariaDB or MySQL client to back up {self.name} databases"
            )
        try:
            spec = resolved(spec)  # one check: the checking connection and the tool agree
            conn = self.connect(spec)
        except EngineError as exc:
            raise DumpFailed(str(exc)) from exc
        conn.close()  # it checked access and that the database exists; the dump counts
        defaults_file = write_defaults_file(spec)
        return _CountedDump(
            self.dump_argv(spec, tool=tool, defaults_file=defaults_file),
            recount=lambda: self.row_counts(spec),
            cleanups=[lambda: _remove(defaults_file)],
        )

    def create_database(self, spec: ConnectionSpec) -> None:
        self._server_command(
            spec, f"CREATE DATABASE {self._quote(spec.name)} CHARACTER SET utf8mb4"
        )

    def drop_database(self, spec: ConnectionSpec) -> None:
        self._server_command(spec, f"DROP DATABASE IF EXISTS {self._quote(spec.name)}")

    @staticmethod
    def _quote(identifier: str) -> str:
        return "`" + identifier.replace("`", "``") + "`"

    def _server_command(self, spec: ConnectionSpec, statement: str) -> None:
        conn = self.connect(spec, database="")
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        except pymysql.Error as exc:
            raise EngineError(f"{statement} failed on {_where(spec)}: {exc}") from exc
        finally:
            conn.close()


class _CountedDump(ProcessDump):
    """A mariadb-dump whose `row_counts` are filled from its own stream when it finishes."""

    def __init__(self, argv: list[str], *, recount: Callable[[], dict[str, int]], **kw) -> None:
        super().__init__(argv, **kw)
        self._counter = DumpRowCounter()
        self._recount = recount
        self.stdout = FeedingReader(self.stdout, self._counter.feed)  # type: ignore[assignment]

    def finish(self) -> None:
        already = self._done
        super().finish()
        if already:
            return
        counts = self._counter.finish()
        if self._counter.failed is not None:
            logger.warning(
                "could not count rows in the %s stream (%s); counting the tables instead",
                self.tool,
                self._counter.failed,
            )
            try:
                counts = self._recount()
            except EngineError as exc:
                raise DumpFailed(f"cannot count rows after the dump: {exc}") from exc
        self.row_counts.update(counts)
