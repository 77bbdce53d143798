"""PostgreSQL access across a restore: the owners and GRANTs inside a dump, and the database's
own grants and settings, which no dump of one database carries.

No Django imports; ``restores.loading`` calls this module.

Inside the dump. pg_restore can give every object its owner and GRANTs back, but a statement
naming a role the target server lacks aborts the load, and a non-superuser may only hand
objects to roles it can act as. So before loading, the dump's schema SQL (``pg_restore
--schema-only``, which reads only the table of contents) is scanned for the roles it names:

- owners (``ALTER … OWNER TO r``) must exist, and the connecting role must be a superuser or
  able to act as them;
- grantees (``GRANT … TO r``, ``REVOKE … FROM r``) must exist;
- ``ALTER DEFAULT PRIVILEGES FOR ROLE r`` needs to act as ``r``, and grants made by another
  role than the owner (``SET SESSION AUTHORIZATION r``) need a superuser.

Owners are restored when the owners can be; GRANTs when everything can be (GRANTs written for
one owner mean little on objects owned by another). What is left out is said in a note for
the restore's message. The scan errs towards naming too many roles (a line in a function body
can look like a GRANT), which only makes leaving them out more likely. What it cannot foresee
(an owner that may create in its schema only through a GRANT restored later) fails the load;
a dump that can be read again is then loaded again without owners and GRANTs
(``Access.refused``).

Outside the dump. A database's GRANTs (``pg_database.datacl``), its ``ALTER DATABASE … SET``
and ``ALTER ROLE … IN DATABASE … SET`` settings and its connection limit belong to the
database, which the swap replaces: they are copied from the live target onto the loaded
scratch copy just before the swap (not before the load: a setting such as
``default_transaction_read_only`` would break it).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO

import psycopg
from psycopg import sql

from backups.engines import ConnectionSpec, RestoreFailed
from backups.engines.base import spawn
from backups.engines.postgresql import PostgreSQLEngine

# Lines longer than this (function bodies, view definitions) are skipped unread: no statement
# naming a role is that long, and reading them whole would hold them in memory.
LINE_LIMIT = 64 << 10
# Small writes: pg_restore stops after the table of contents and every byte given to it is
# kept to be given again to the load.
TOC_CHUNK = 64 << 10

# pg_dump's fmtId(): bare when lower case, digits and underscores, else double-quoted.
_ROLE = r'(?:GROUP )?(?P<{0}>"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*|PUBLIC)'
_GRANTEE_END = _ROLE.format("grantee") + r"(?: WITH GRANT OPTION)?(?: GRANTED BY .+)?;$"
OWNER_TO = re.compile(r"^ALTER .* OWNER TO " + _ROLE.format("owner") + ";$")
DEFAULT_ACL = re.compile(
    r"^ALTER DEFAULT PRIVILEGES FOR ROLE "
    + _ROLE.format("actor")
    + r" .*(?: TO | FROM )"
    + _GRANTEE_END
)
GRANT_OR_REVOKE = re.compile(r"^(?:GRANT .* TO |REVOKE .* FROM )" + _GRANTEE_END)
SESSION_AUTHORIZATION = re.compile(r"^SET SESSION AUTHORIZATION " + _ROLE.format("grantor") + ";$")

# Errors of a load that restored owners and GRANTs which a load without them would not hit.
REFUSED = re.compile(
    r'role "(?:[^"]|"")*" does not exist'
    r'|must be member of role "(?:[^"]|"")*"'
    r'|must be able to SET ROLE "(?:[^"]|"")*"'
    r"|permission denied for schema \S+"
    r"|permission denied to (?:set session authorization|change default privileges)"
)

# Settings PostgreSQL stores as a list of quoted elements (pg_dump's variable_is_guc_list_quote).
LIST_SETTINGS = frozenset(
    {
        "local_preload_libraries",
        "search_path",
        "session_preload_libraries",
        "shared_preload_libraries",
        "temp_tablespaces",
        "unix_socket_directories",
    }
)


# --- the roles a dump names ------------------------------------------------------------------


def _unquote(role: str) -> str:
    return role[1:-1].replace('""', '"') if role.startswith('"') else role


@dataclass
class DumpRoles:
    """The roles a dump's owner and privilege statements name, by what restoring them needs."""

    owners: set[str] = field(default_factory=set)
    grantees: set[str] = field(default_factory=set)
    actors: set[str] = field(default_factory=set)
    grantors: set[str] = field(default_factory=set)

    def add(self, line: str) -> None:
        for pattern in (OWNER_TO, DEFAULT_ACL, GRANT_OR_REVOKE, SESSION_AUTHORIZATION):
            match = pattern.match(line)
            if match is None:
                continue
            for kind, role in match.groupdict().items():
                if role is not None and role != "PUBLIC":
                    getattr(self, f"{kind}s").add(_unquote(role))
            return

    def all(self) -> set[str]:
        return self.owners | self.grantees | self.actors | self.grantors


def _names(roles: set[str], shown: int = 10) -> str:
    names = sorted(roles)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def roles_in_sql(lines: Iterable[str]) -> DumpRoles:
    roles = DumpRoles()
    for line in lines:
        roles.add(line.rstrip("\r\n"))
    return roles


def _lines(pipe: IO[bytes]) -> Iterator[str]:
    skipping = False
    while piece := pipe.readline(LINE_LIMIT):
        whole = piece.endswith(b"\n")
        if whole and not skipping:
            yield piece.decode("utf-8", errors="replace")
        skipping = not whole


def _write_all(pipe: IO[bytes], data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = pipe.write(view)
        view = view[written or 0 :]


def _read_roles(argv: list[str], feed: BinaryIO | None, head: IO[bytes] | None) -> DumpRoles:
    proc, collector = spawn(
        argv,
        stdin=subprocess.PIPE if feed is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        error_class=RestoreFailed,
        loader=True,
    )
    assert proc.stdout is not None  # noqa: S101 - stdout=PIPE above
    found: list[DumpRoles] = []
    reader = threading.Thread(
        target=lambda: found.append(roles_in_sql(_lines(proc.stdout))),  # type: ignore[arg-type]
        name="pg-restore-roles",
        daemon=True,
    )
    reader.start()
    try:
        if feed is not None and head is not None:
            assert proc.stdin is not None  # noqa: S101 - stdin=PIPE above
            try:
                while chunk := feed.read(TOC_CHUNK):
                    head.write(chunk)  # first: a chunk the tool refuses is still kept
                    _write_all(proc.stdin, chunk)
            except BrokenPipeError:
                pass  # it has read the table of contents and quit, as expected
            finally:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
        returncode = proc.wait()
        reader.join()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if returncode != 0 or not found:
        raise RestoreFailed(
            f"pg_restore could not read the dump's table of contents: {collector.text()}"
        )
    return found[0]


def roles_in_stream(stream: BinaryIO, head: IO[bytes]) -> DumpRoles:
    """The roles named by the dump read from ``stream``.

    Every byte taken from the stream is also written to ``head`` (a temporary file: the table
    of contents and a little more); the load reads ``Rejoined(head, stream)`` afterwards.
    """
    return _read_roles(PostgreSQLEngine.schema_argv(), stream, head)


class Rejoined:
    """The bytes an inspection took from a stream, then the rest of it: the whole dump."""

    def __init__(self, head: IO[bytes], rest: BinaryIO) -> None:
        self._head: IO[bytes] | None = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head is not None:
            data = self._head.read(size)
            if data:
                return data
            self._head = None
        return self._rest.read(size)


# --- what the target server can take -------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """Whether the load restores owners and GRANTs, and the note saying what it left out."""

    owners: bool
    privileges: bool
    user: str
    note: str = ""

    @property
    def notes(self) -> list[str]:
        return [self.note] if self.note else []

    def refused(self, error: str) -> str | None:
        """What in a failed load's error came from restoring owners or GRANTs, if anything."""
        if not (self.owners or self.privileges):
            return None
        match = REFUSED.search(error)
        return match.group(0) if match else None

    def without(self, refusal: str) -> Access:
        return Access(
            owners=False,
            privileges=False,
            user=self.user,
            note=(
                f"restoring owners and grants failed ({refusal}), so the dump was loaded again "
                f"without them; objects are owned by {self.user} and grants were not restored"
            ),
        )


def decide(spec: ConnectionSpec, roles: DumpRoles) -> Access:
    """Which of owners and GRANTs the server of ``spec`` can take, as its user connects."""
    named = roles.all()
    with PostgreSQLEngine().connect(spec) as conn:
        row = conn.execute(
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        user, superuser = (str(row[0]), bool(row[1])) if row else (spec.user, False)
        # PostgreSQL 16 split "may act as" (SET) from membership.
        right = "SET" if conn.info.server_version >= 160000 else "MEMBER"
        can_act = dict(
            conn.execute(  # type: ignore[arg-type]
                "SELECT rolname, pg_has_role(oid, %s) FROM pg_roles WHERE rolname = ANY(%s)",
                (right, sorted(named)),
            ).fetchall()
        )
    missing = named - can_act.keys()
    cannot_act = {
        role
        for role in roles.owners | roles.actors
        if role in can_act and not (superuser or can_act[role])
    }
    owners = not (roles.owners & (missing | cannot_act))
    privileges = owners and not missing and not cannot_act and (superuser or not roles.grantors)
    reasons = []
    if missing:
        reasons.append(f"roles missing on the target: {_names(missing)}")
    if cannot_act:
        reasons.append(f"{user} is not a superuser and cannot act as {_names(cannot_act)}")
    if roles.grantors and not superuser:
        reasons.append(
            f"grants made by {_names(roles.grantors)} (not the objects' owners) need a superuser"
        )
    if not owners:
        reasons.append(f"objects are owned by {user} and grants were not restored")
    elif not privileges:
        reasons.append("objects keep their owners but grants were not restored")
    return Access(owners=owners, privileges=privileges, user=user, note="; ".join(reasons))


# --- the database's own grants and settings -------------------------------------------------


def _setting_value(name: str, value: str) -> sql.Composable:
    """A stored setting's value as SQL; list settings element by element (as pg_dump does),
    since ``search_path=a, "B c"`` given back as one literal would name one odd schema."""
    if name not in LIST_SETTINGS:
        return sql.Literal(value)
    return sql.SQL(", ").join(sql.Literal(item) for item in split_setting_list(value))


def split_setting_list(value: str) -> list[str]:
    """``a, "B c", "x""y"`` -> ``["a", "B c", 'x"y']`` (PostgreSQL's SplitGUCList)."""
    items = []
    for match in re.finditer(r'\s*(?:"((?:[^"]|"")*)"|([^,]*?))\s*(?:,|$)', value):
        if match.end() == match.start():
            break
        quoted, plain = match.groups()
        items.append(quoted.replace('""', '"') if quoted is not None else plain)
    return items or [value]


def _grantee(name: str | None) -> sql.Composable:
    return sql.Identifier(name) if name else sql.SQL("PUBLIC")


def copy_database_access(conn: psycopg.Connection, *, source: str, dest: str) -> list[str]:
    """Give database ``dest`` the GRANTs, settings and connection limit of ``source``.

    The GRANTs are copied all or nothing (a psycopg.Error propagates: the caller must not
    swap a copy that would let in roles the target kept out). Settings are copied one by
    one; the returned notes name those that could not be (a setting only a superuser may
    make, a role's setting without CREATEROLE).
    """
    scratch = sql.Identifier(dest)
    row = conn.execute(
        "SELECT datacl IS NOT NULL, datconnlimit FROM pg_database WHERE datname = %s", (source,)
    ).fetchone()
    if row is None:
        return []
    explicit_acl, connection_limit = row
    if explicit_acl:
        # A NULL datacl means the defaults, which the fresh scratch copy already has.
        with conn.transaction():
            holders = conn.execute(
                "SELECT DISTINCT a.grantee = 0, pg_get_userbyid(a.grantee)"
                " FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a"
                " WHERE d.datname = %s",
                (dest,),
            ).fetchall()
            for public, holder in holders:
                conn.execute(
                    sql.SQL("REVOKE ALL ON DATABASE {} FROM {} CASCADE").format(
                        scratch, _grantee(None if public else holder)
                    )
                )
            grants = conn.execute(
                "SELECT a.grantee = 0, pg_get_userbyid(a.grantee),"
                " a.is_grantable, string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type)"
                " FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s"
                " GROUP BY 1, 2, 3",
                (source,),
            ).fetchall()
            for public, grantee, grantable, privileges in grants:
                conn.execute(
                    sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                        sql.SQL(privileges),  # CREATE, TEMPORARY, CONNECT: from the catalog
                        scratch,
                        _grantee(None if public else grantee),
                        sql.SQL(" WITH GRANT OPTION" if grantable else ""),
                    )
                )
    statements = []
    if connection_limit != -1:
        statements.append(
            (
                f"connection limit {connection_limit}",
                sql.SQL("ALTER DATABASE {} WITH CONNECTION LIMIT {}").format(
                    scratch, sql.Literal(connection_limit)
                ),
            )
        )
    settings = conn.execute(
        "SELECT s.setrole = 0, pg_get_userbyid(s.setrole), c.setting"
        " FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase,"
        " unnest(s.setconfig) WITH ORDINALITY c(setting, n)"
        " WHERE d.datname = %s ORDER BY 1 DESC, 2, c.n",
        (source,),
    ).fetchall()
    for whole_database, role, setting in settings:
        name, _, value = setting.partition("=")
        assignment = sql.SQL("SET {} = {}").format(
            sql.Identifier(*name.split(".")), _setting_value(name, value)
        )
        if whole_database:
            statement = sql.SQL("ALTER DATABASE {} {}").format(scratch, assignment)
            label = f"setting {setting}"
        else:
            statement = sql.SQL("ALTER ROLE {} IN DATABASE {} {}").format(
                sql.Identifier(role), scratch, assignment
            )
            label = f"setting {setting} of role {role}"
        statements.append((label, statement))
    notes = []
    for label, statement in statements:
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            notes.append(f"the database's {label} was not copied ({reason})")
    return notes
