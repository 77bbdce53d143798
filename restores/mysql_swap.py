"""MariaDB/MySQL: swap a loaded scratch database in for its target, objects included.

No Django imports; ``restores.loading`` calls ``swap()`` and ``put_back()``.

There is no RENAME DATABASE. Tables (base, system-versioned, sequences) move between
databases with one multi-table ``RENAME TABLE``, which the server applies atomically (all or
nothing): the target's old tables go to its kept database (``<name>_sbx_prev_<tag>``), the
scratch's come in. When neither side has anything else, that one statement is the whole
swap. The kept database stays until the whole restore has swapped (then it is dropped) or
failed (then ``put_back`` moves its tables back). Before anything moves, it gets a record
(table ``_strongbox_previous``) of the target's tables and of its other objects'
definitions, so that ``put_back`` works from another process too (the reaper, after a
worker died), from wherever the swap stopped.

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
   kept database is kept while it holds the old ones).

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


# --- the previous contents, kept ---------------------------------------------------------

# Beside the previous tables in the kept database: which tables they were and the target's
# other objects as definitions (created there, events would fire and triggers pin tables).
RECORD = "_strongbox_previous"
RECORD_COLUMNS = "kind, name, statement, charset_name, collation_name, sql_mode, time_zone"


def _database_exists(cur, name: str) -> bool:
    cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,))
    return cur.fetchone() is not None


def _record(cur, kept: str, old: Contents) -> None:
    """Write down in ``kept`` what the target held, in one INSERT (all rows or none)."""
    cur.execute(
        f"CREATE TABLE {quote(kept)}.{quote(RECORD)} (position integer PRIMARY KEY,"
        " kind varchar(16) NOT NULL, name varchar(255) NOT NULL, statement longtext,"
        " charset_name varchar(64), collation_name varchar(64), sql_mode text,"
        " time_zone varchar(64)) ENGINE=InnoDB CHARACTER SET utf8mb4"
    )
    rows = [("DATABASE", "", None, None, None, None, None)]
    rows += [("TABLE", name, None, None, None, None, None) for name in old.tables]
    rows += [
        (d.kind, d.name, d.statement, d.charset, d.collation, d.sql_mode, d.time_zone)
        for d in old.objects
    ]
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    cur.execute(
        f"INSERT INTO {quote(kept)}.{quote(RECORD)} (position, {RECORD_COLUMNS})"  # noqa: S608
        f" VALUES {values}",
        [value for position, row in enumerate(rows) for value in (position, *row)],
    )


def _read_record(cur, kept: str) -> Contents | None:
    """What a swap wrote down in ``kept``; None if it stopped before writing it."""
    cur.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        (kept, RECORD),
    )
    if cur.fetchone() is None:
        return None
    cur.execute(
        f"SELECT {RECORD_COLUMNS} FROM {quote(kept)}.{quote(RECORD)} ORDER BY position"  # noqa: S608
    )
    rows = cur.fetchall()
    if not rows:
        return None
    contents = Contents()
    for kind, name, statement, charset, collation, sql_mode, time_zone in rows:
        if kind == "TABLE":
            contents.tables.append(name)
        elif kind != "DATABASE":
            contents.objects.append(
                Definition(kind, name, statement, charset, collation, sql_mode, time_zone)
            )
    return contents


def _put_previous_back(
    cur, target: str, kept: str, discard: str, old: Contents
) -> tuple[bool, Exception | None]:
    """Put ``old`` back in the target, from wherever a swap stopped (tables moved or not).

    The target's objects are dropped (they pin its tables); if the previous tables are in
    ``kept``, the target's current tables go to ``discard`` and they come back in one
    statement; then the previous objects are created. Returns (tables back, error or None).
    """
    tables_back = False
    try:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote(discard)}")
        current, standing = object_names(cur, target)
        for kind, name in reversed(standing):
            drop(cur, target, kind, name)
        kept_tables, _ = object_names(cur, kept)
        # One RENAME TABLE moved them all or none: the first says where they all are.
        if not old.tables or old.tables[0] in kept_tables:
            back = _moves(current, target, discard) + _moves(old.tables, kept, target)
            if back:
                cur.execute("RENAME TABLE " + ", ".join(back))
        tables_back = True
        _use(cur, target)
        create_all(cur, old.objects)
    except Exception as exc:  # noqa: BLE001 - the caller says what state this leaves
        return tables_back, exc
    return True, None


# --- the swap ------------------------------------------------------------------------------


def _cursor(target: ConnectionSpec):
    conn = MySQLEngine(target.engine).connect(target, database="")
    return contextlib.closing(conn)


def swap(target: ConnectionSpec, scratch: ConnectionSpec, kept: str) -> bool:
    """Put the scratch's tables and objects in the target's place, keeping the previous
    ones in the database ``kept`` until ``put_back`` or dropping it.

    Returns False when the target database did not exist (it is created; nothing is kept).
    """
    with _cursor(target) as conn, conn.cursor() as cur:
        return _swap(cur, target.name, scratch.name, kept)


def put_back(target: ConnectionSpec, kept: str, discard: str) -> bool:
    """Put the contents kept in ``kept`` back in the target, whether the swap finished or
    stopped midway (a worker killed); the target's current tables are dropped with
    ``discard``. False when nothing is kept. ``SwapIncomplete`` says what is where."""
    with _cursor(target) as conn, conn.cursor() as cur:
        if not _database_exists(cur, kept):
            return False
        old = _read_record(cur, kept)
        if old is None:
            # The record is written before anything moves: the target was not changed.
            _drop_database(cur, kept)
            return True
        tables_back, error = _put_previous_back(cur, target.name, kept, discard, old)
        if error is not None:
            state = (
                "its previous tables are back but some of its own objects may be missing; "
                f"their definitions are kept in {kept}.{RECORD}"
                if tables_back
                else f"it may hold the restored tables; its previous ones are kept in {kept!r}"
            )
            raise SwapIncomplete(f"could not put {target.name!r} back ({error}): {state}")
        _drop_database(cur, kept)
        _drop_database(cur, discard)
    return True


def _swap(cur, target: str, scratch: str, kept: str) -> bool:
    if _database_exists(cur, kept):
        # Another restore's kept copy (or a leftover of this one): never overwrite it.
        raise RestoreFailed(
            f"a database {kept!r} already exists where the previous {target!r} would be kept; "
            "the target was not changed"
        )
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
    else:
        cur.execute(f"CREATE DATABASE {quote(kept)} CHARACTER SET {row[0]} COLLATE {row[1]}")
        try:
            _record(cur, kept, old)
        except pymysql.Error as exc:
            _drop_database(cur, kept)
            raise RestoreFailed(
                f"could not write down the target's objects before the swap ({exc}); the target "
                "was not changed"
            ) from exc
    moves = _moves(old.tables, target, kept) + _moves(new.tables, scratch, target)
    if old.objects or new.objects:
        _swap_with_objects(cur, target, scratch, kept, old, new, moves)
    elif moves:
        try:
            # One statement: the server renames all or none.
            cur.execute("RENAME TABLE " + ", ".join(moves))
        except pymysql.Error as exc:
            _drop_database(cur, kept)
            raise RestoreFailed(
                f"could not swap in the restored tables (nothing changed): {exc}"
            ) from exc
    _drop_database(cur, scratch)
    return row is not None


def _swap_with_objects(
    cur, target: str, scratch: str, kept: str, old: Contents, new: Contents, moves: list[str]
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
        _drop_database(cur, kept)
        raise RestoreFailed(
            f"could not swap in the restored tables (nothing changed): {exc}"
        ) from exc
    try:
        _use(cur, target)
        for definition in old.of("PROCEDURE", "FUNCTION", "EVENT"):
            drop(cur, target, definition.kind, definition.name)
        create_all(cur, new.objects)
    except Exception as exc:
        _undo(cur, target, scratch, kept, old, exc)


def _undo(cur, target: str, scratch: str, kept: str, old: Contents, exc: Exception) -> None:
    """Put the target back as it was after the tables moved; always raises."""
    tables_back, undo = _put_previous_back(cur, target, kept, scratch, old)
    if tables_back:
        _drop_database(cur, kept)  # holds the record only
    if undo is not None:
        if tables_back:
            state = (
                "its tables are back but some of its own objects may be missing (it had "
                f"{_labels(old.objects) or 'none'})"
            )
        else:
            state = (
                "it may hold the restored tables without their objects; its previous tables "
                f"are kept in the database {kept!r}"
            )
        raise SwapIncomplete(
            f"creating the restored objects in the target failed after its tables were "
            f"swapped ({exc}), and undoing that failed too ({undo}): {state}"
        ) from exc
    raise RestoreFailed(
        f"could not create the restored objects in the target ({exc}); its tables were moved "
        "back and its own views, triggers, routines and events recreated"
    ) from exc
