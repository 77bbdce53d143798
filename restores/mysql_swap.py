"""MariaDB/MySQL: swap a loaded scratch database in for its target, objects included.

No Django imports; ``restores.loading.swap`` calls ``swap()``.

There is no RENAME DATABASE. Tables (base, system-versioned, sequences) move between
databases with one multi-table ``RENAME TABLE``, which the server applies atomically (all or
nothing): the target's old tables go to an aside database, the scratch's come in. When
neither side has anything else, that one statement is the whole swap.

Views, triggers, stored routines and events cannot change database (a table with triggers
refuses to move: ER_TRG_IN_WRONG_SCHEMA; a view too: ER_FORBID_SCHEMA_CHANGE), so when
either side has some:

1. Every object's definition is read from both sides first (``SHOW CREATE …``), with its
   definer, sql_mode, character set, collation and (events) time zone. The scratch's views
   come back fully qualified with the scratch's name; that identifier is rewritten to the
   target's. Nothing is changed when a definition cannot be read.
2. The triggers of both sides are dropped (they pin their tables) and the target's views
   (one could hold a name a scratch table takes), then the tables move in one statement.
   If this fails, the target's triggers and views are put back: nothing changed.
3. The target's old routines and events are dropped and the scratch's objects are created
   in the target: routines, then views (retried while some succeed, as views read views),
   then triggers, then events (last: they may fire).
4. If step 3 fails, whatever stands in the target besides tables is dropped, the tables move
   back in one statement and the target's own objects are recreated: the target is as it
   was. Only if that fails too is ``SwapIncomplete`` raised, saying where the tables are (the
   aside database is kept while it holds the old ones).

One window cannot be closed: MariaDB refuses ``RENAME TABLE`` under ``LOCK TABLES`` and DDL
commits implicitly, so from dropping the target's triggers until the scratch's are created,
writes to the target's tables (first the old ones, then the new) fire no triggers, and its
views, routines and events are missing for part of it. Everything is read beforehand and
the statements run back to back on one connection to keep that short.

Not carried over: a routine's "Database Collation" (the database default when it was
created); routines take the target database's, as they would on the target itself.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace

import pymysql
import pymysql.charset

from backups.engines import ConnectionSpec, RestoreFailed
from backups.engines.mysql import MySQLEngine

# What RENAME TABLE can move between databases.
MOVABLE = ("BASE TABLE", "SYSTEM VERSIONED", "SEQUENCE")
# The order a database's objects are created in: routines before the views that may call
# them, views before triggers, events last.
KINDS = ("PROCEDURE", "FUNCTION", "VIEW", "TRIGGER", "EVENT")
# Where SHOW CREATE <kind> puts the statement.
STATEMENT_COLUMN = {
    "VIEW": "Create View",
    "TRIGGER": "SQL Original Statement",
    "PROCEDURE": "Create Procedure",
    "FUNCTION": "Create Function",
    "EVENT": "Create Event",
}
FALLBACK_CHARSET = ("utf8mb4", "utf8mb4_general_ci")

quote = MySQLEngine._quote


class SwapIncomplete(RestoreFailed):
    """A swap failed and undoing it failed too; the message says where the data is."""


@dataclass(frozen=True)
class Definition:
    """One view, trigger, routine or event as SHOW CREATE gives it."""

    kind: str
    name: str
    statement: str
    charset: str
    collation: str
    sql_mode: str | None = None
    time_zone: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind.lower()} {self.name}"


@dataclass
class Contents:
    """A database's movable tables and its other objects, in creation order."""

    tables: list[str] = field(default_factory=list)
    objects: list[Definition] = field(default_factory=list)

    def of(self, *kinds: str) -> list[Definition]:
        return [o for o in self.objects if o.kind in kinds]


# --- reading -------------------------------------------------------------------------------


def object_names(cur, database: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(movable tables, [(kind, name)] of the other objects, in creation order).

    Raises RestoreFailed for what this module cannot carry over (e.g. Oracle-mode packages).
    """
    cur.execute(
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = %s"
        " ORDER BY table_name",
        (database,),
    )
    tables, others, unknown = [], [], []
    for name, kind in cur.fetchall():
        if kind in MOVABLE:
            tables.append(name)
        elif kind == "VIEW":
            others.append(("VIEW", name))
        else:
            unknown.append(f"{kind.lower()} {name}")
    cur.execute(
        "SELECT routine_type, routine_name FROM information_schema.routines"
        " WHERE routine_schema = %s ORDER BY routine_name",
        (database,),
    )
    for kind, name in cur.fetchall():
        if kind in ("PROCEDURE", "FUNCTION"):
            others.append((kind, name))
        else:
            unknown.append(f"{kind.lower()} {name}")
    # Several triggers on one table and event fire in action_order: create them in it.
    cur.execute(
        "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = %s"
        " ORDER BY event_object_table, action_timing, event_manipulation, action_order",
        (database,),
    )
    others += [("TRIGGER", row[0]) for row in cur.fetchall()]
    cur.execute(
        "SELECT event_name FROM information_schema.events WHERE event_schema = %s"
        " ORDER BY event_name",
        (database,),
    )
    others += [("EVENT", row[0]) for row in cur.fetchall()]
    if unknown:
        raise RestoreFailed(
            f"cannot carry {', '.join(unknown[:10])} of {database!r} over in a swap; the target "
            "was not changed"
        )
    others.sort(key=lambda item: KINDS.index(item[0]))  # stable: keeps the triggers' order
    return tables, others


def read_contents(cur, database: str) -> Contents:
    tables, names = object_names(cur, database)
    return Contents(tables, [_definition(cur, database, kind, name) for kind, name in names])


def _definition(cur, database: str, kind: str, name: str) -> Definition:
    cur.execute(f"SHOW CREATE {kind} {quote(database)}.{quote(name)}")
    row = dict(zip([column[0] for column in cur.description], cur.fetchone(), strict=True))
    statement = row.get(STATEMENT_COLUMN[kind])
    if not statement:
        # Routines' bodies are hidden from a user who is neither their definer nor global.
        raise RestoreFailed(
            f"cannot read the definition of {kind.lower()} {name} in {database!r} (the "
            "connecting user may lack the privilege); the target was not changed"
        )
    return Definition(
        kind=kind,
        name=name,
        statement=statement,
        charset=row["character_set_client"],
        collation=row["collation_connection"],
        sql_mode=row.get("sql_mode"),
        time_zone=row.get("time_zone"),
    )


def retarget(definition: Definition, scratch: str, target: str) -> Definition:
    """A scratch object's definition as it must read in the target.

    Views are stored fully qualified (`scratch`.`table`); the scratch's name is unique
    (``<name>_sbx_restore_<tag>``), so replacing the quoted identifier is exact. Triggers,
    routines and events keep their text as written, unqualified.
    """
    if definition.kind != "VIEW":
        return definition
    return replace(
        definition, statement=definition.statement.replace(quote(scratch), quote(target))
    )


# --- writing -------------------------------------------------------------------------------


def create(cur, definition: Definition) -> None:
    """Create one object in the current database under the session settings it was made with.

    The statement is sent in its own client character set, so its literals mean what they
    meant; the session's settings are put back afterwards.
    """
    charset, collation = definition.charset, definition.collation
    info = pymysql.charset.charset_by_name(charset)
    try:
        payload = definition.statement.encode(info.encoding) if info else None
    except (LookupError, UnicodeEncodeError):
        payload = None
    if payload is None:
        # No Python codec (e.g. binary) or a character it cannot hold: send it as utf8mb4.
        charset, collation = FALLBACK_CHARSET
        payload = definition.statement.encode("utf-8")
    settings = {"character_set_client": charset, "collation_connection": collation}
    if definition.sql_mode is not None:
        settings["sql_mode"] = definition.sql_mode
    if definition.time_zone:
        settings["time_zone"] = definition.time_zone
    cur.execute(
        "SELECT @@session.character_set_client, @@session.collation_connection,"
        " @@session.sql_mode, @@session.time_zone"
    )
    saved = cur.fetchone()
    cur.execute(
        "SET SESSION " + ", ".join(f"{name} = %s" for name in settings), tuple(settings.values())
    )
    try:
        cur.execute(payload)
    finally:
        cur.execute(
            "SET SESSION character_set_client = %s, collation_connection = %s, sql_mode = %s,"
            " time_zone = %s",
            saved,
        )


def create_all(cur, objects: list[Definition]) -> None:
    """Create objects in the current database, in KINDS order."""
    for kind in KINDS:
        group = [d for d in objects if d.kind == kind]
        if kind == "VIEW":
            _create_views(cur, group)
        else:
            for definition in group:
                create(cur, definition)


def _create_views(cur, views: list[Definition]) -> None:
    # A view over a view fails until the other exists: retry while a round makes progress.
    pending = views
    while pending:
        failed: list[Definition] = []
        error: pymysql.Error | None = None
        for view in pending:
            try:
                create(cur, view)
            except pymysql.Error as exc:
                failed.append(view)
                error = exc
        if error is not None and len(failed) == len(pending):
            raise error
        pending = failed


def drop(cur, database: str, kind: str, name: str) -> None:
    cur.execute(f"DROP {kind} IF EXISTS {quote(database)}.{quote(name)}")


def _use(cur, database: str) -> None:
    cur.execute(f"USE {quote(database)}")


def _drop_database(cur, name: str) -> None:
    # The swap is done (or undone) by now: a leftover only costs space.
    with contextlib.suppress(pymysql.Error):
        cur.execute(f"DROP DATABASE IF EXISTS {quote(name)}")


def _moves(tables: list[str], source: str, dest: str) -> list[str]:
    return [f"{quote(source)}.{quote(t)} TO {quote(dest)}.{quote(t)}" for t in tables]


def _labels(definitions: list[Definition]) -> str:
    shown = ", ".join(d.label for d in definitions[:10])
    return shown + (f" and {len(definitions) - 10} more" if len(definitions) > 10 else "")


# --- the swap ------------------------------------------------------------------------------


def swap(target: ConnectionSpec, scratch: ConnectionSpec, aside: str) -> None:
    """Put the scratch's tables and objects in the target's place and drop the old ones."""
    conn = MySQLEngine(target.engine).connect(target, database="")
    try:
        with conn.cursor() as cur:
            _swap(cur, target.name, scratch.name, aside)
    finally:
        conn.close()


def _swap(cur, target: str, scratch: str, aside: str) -> None:
    cur.execute(
        "SELECT default_character_set_name, default_collation_name"
        " FROM information_schema.schemata WHERE schema_name = %s",
        (target,),
    )
    row = cur.fetchone()
    old = read_contents(cur, target) if row else Contents()
    new = read_contents(cur, scratch)
    new.objects = [retarget(d, scratch, target) for d in new.objects]
    if row is None:
        cur.execute(f"CREATE DATABASE {quote(target)} CHARACTER SET utf8mb4")
    if old.tables:
        cur.execute(f"CREATE DATABASE {quote(aside)} CHARACTER SET {row[0]} COLLATE {row[1]}")
    moves = _moves(old.tables, target, aside) + _moves(new.tables, scratch, target)
    if old.objects or new.objects:
        _swap_with_objects(cur, target, scratch, aside, old, new, moves)
    elif moves:
        try:
            # One statement: the server renames all or none.
            cur.execute("RENAME TABLE " + ", ".join(moves))
        except pymysql.Error as exc:
            _drop_database(cur, aside)
            raise RestoreFailed(
                f"could not swap in the restored tables (nothing changed): {exc}"
            ) from exc
    _drop_database(cur, aside)
    _drop_database(cur, scratch)


def _swap_with_objects(
    cur, target: str, scratch: str, aside: str, old: Contents, new: Contents, moves: list[str]
) -> None:
    """Steps 2 to 4 of the module docstring."""
    dropped: list[Definition] = []
    try:
        for definition in new.of("TRIGGER"):
            drop(cur, scratch, definition.kind, definition.name)
        for definition in old.of("TRIGGER", "VIEW"):
            drop(cur, target, definition.kind, definition.name)
            dropped.append(definition)
        if moves:
            cur.execute("RENAME TABLE " + ", ".join(moves))
    except Exception as exc:
        try:
            _use(cur, target)
            create_all(cur, dropped)
        except Exception as undo:
            raise SwapIncomplete(
                f"could not swap in the restored tables ({exc}) nor recreate the target's "
                f"{_labels(dropped)} ({undo}); the target's tables were not changed"
            ) from exc
        _drop_database(cur, aside)
        raise RestoreFailed(
            f"could not swap in the restored tables (nothing changed): {exc}"
        ) from exc
    try:
        _use(cur, target)
        for definition in old.of("PROCEDURE", "FUNCTION", "EVENT"):
            drop(cur, target, definition.kind, definition.name)
        create_all(cur, new.objects)
    except Exception as exc:
        _undo(cur, target, scratch, aside, old, new, exc)


def _undo(
    cur, target: str, scratch: str, aside: str, old: Contents, new: Contents, exc: Exception
) -> None:
    """Put the target back as it was after the tables moved; always raises."""
    moved_back = False
    try:
        _, standing = object_names(cur, target)
        for kind, name in reversed(standing):
            drop(cur, target, kind, name)
        back = _moves(new.tables, target, scratch) + _moves(old.tables, aside, target)
        if back:
            cur.execute("RENAME TABLE " + ", ".join(back))
        moved_back = True
        create_all(cur, old.objects)
    except Exception as undo:
        if moved_back:
            _drop_database(cur, aside)  # empty again
            state = (
                "its tables are back but some of its own objects may be missing (it had "
                f"{_labels(old.objects) or 'none'})"
            )
        else:
            state = (
                "it may hold the restored tables without their objects; its previous tables "
                f"are kept in the database {aside!r}"
            )
        raise SwapIncomplete(
            f"creating the restored objects in the target failed after its tables were "
            f"swapped ({exc}), and undoing that failed too ({undo}): {state}"
        ) from exc
    _drop_database(cur, aside)
    raise RestoreFailed(
        f"could not create the restored objects in the target ({exc}); its tables were moved "
        "back and its own views, triggers, routines and events recreated"
    ) from exc
