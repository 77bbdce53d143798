"""PostgreSQL access that lives outside a dump: the database's own GRANTs and settings.

No Django imports; ``restores.loading`` calls this module.

A database's GRANTs (``pg_database.datacl``), its ``ALTER DATABASE … SET`` and ``ALTER ROLE …
IN DATABASE … SET`` settings and its connection limit belong to the database, which the swap
replaces, and no dump of one database carries them: they are copied from the live target onto
the loaded scratch copy just before the swap (not before the load: a setting such as
``default_transaction_read_only`` would break it).
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

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
