"""MariaDB restores of databases with views, triggers, routines and events, through the real
dump tool and server: the objects come back in the target, reading the target's tables."""

import pymysql
import pytest

from restores import mysql_swap
from restores.models import RestoreStatus
from restores.services import restore_claim, restore_execute, restore_undo
from tests import factories
from tests.backups.helpers import database_for, run_backup_now
from tests.fixtures.databases import MySQLEngine, fill_mariadb, table_checksums
from tests.restores.helpers import leftovers, run_restore_now

pytestmark = pytest.mark.django_db

# A view over two tables, a view over that view, a trigger that changes a column (with a
# non-ASCII literal), a procedure, functions (one whose meaning depends on its sql_mode) and
# an event.
OBJECTS = [
    "CREATE VIEW customer_documents AS SELECT c.id, c.name, d.flag"
    " FROM customers c JOIN documents d ON d.id = c.id",
    "CREATE VIEW flagged AS SELECT id, name FROM customer_documents WHERE flag IS NOT NULL",
    "CREATE TRIGGER stamp_note BEFORE INSERT ON customers FOR EACH ROW"
    " SET NEW.note = CONCAT('stämped:', COALESCE(NEW.note, ''))",
    "CREATE PROCEDURE zero_big(IN below INT) UPDATE measurements SET big = 0 WHERE id < below",
    "CREATE FUNCTION doubled(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
    "SET SESSION sql_mode = CONCAT(@@sql_mode, ',PIPES_AS_CONCAT')",
    "CREATE FUNCTION greeting(who TEXT) RETURNS TEXT DETERMINISTIC RETURN 'hi ' || who",
    "SET SESSION sql_mode = DEFAULT",
    "CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00'"
    " DO DELETE FROM measurements WHERE id < 0",
]
KINDS = {
    "VIEW": "SELECT table_name FROM information_schema.views WHERE table_schema = %s",
    "TRIGGER": "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = %s",
    "PROCEDURE": "SELECT routine_name FROM information_schema.routines"
    " WHERE routine_schema = %s AND routine_type = 'PROCEDURE'",
    "FUNCTION": "SELECT routine_name FROM information_schema.routines"
    " WHERE routine_schema = %s AND routine_type = 'FUNCTION'",
    "EVENT": "SELECT event_name FROM information_schema.events WHERE event_schema = %s",
}
STATEMENT = {
    "VIEW": "Create View",
    "TRIGGER": "SQL Original Statement",
    "PROCEDURE": "Create Procedure",
    "FUNCTION": "Create Function",
    "EVENT": "Create Event",
}


def _execute(spec, *statements):
    conn = MySQLEngine("mariadb").connect(spec)
    try:
        with conn.cursor() as cur:
            results = []
            for statement in statements:
                cur.execute(statement)
                results.append(cur.fetchall())
            return results
    finally:
        conn.close()


def definitions(spec):
    """(kind, name) -> (statement, sql_mode, character set), the database's own name as DB."""
    conn = MySQLEngine("mariadb").connect(spec)
    result = {}
    try:
        with conn.cursor() as cur:
            for kind, query in KINDS.items():
                cur.execute(query, (spec.name,))
                for (name,) in cur.fetchall():
                    cur.execute(f"SHOW CREATE {kind} `{name}`")
                    columns = [column[0] for column in cur.description]
                    row = dict(zip(columns, cur.fetchone(), strict=True))
                    statement = row[STATEMENT[kind]].replace(f"`{spec.name}`", "`DB`")
                    result[(kind, name)] = (
                        statement,
                        row.get("sql_mode"),
                        row["character_set_client"],
                    )
    finally:
        conn.close()
    return result


def view_definitions(spec):
    rows = _execute(
        spec,
        "SELECT table_name, view_definition FROM information_schema.views"
        " WHERE table_schema = DATABASE()",
    )[0]
    return dict(rows)


def _make_source(spec):
    fill_mariadb(spec, rows=60)
    _execute(spec, *OBJECTS)
    return table_checksums(spec), definitions(spec)


def _scribble(spec):
    _execute(
        spec,
        "DELETE FROM customers WHERE id % 2 = 0",
        "DROP VIEW flagged",
        "DROP TRIGGER stamp_note",
        "DROP EVENT nightly",
        "DROP FUNCTION doubled",
        "CREATE FUNCTION doubled(x INT) RETURNS INT DETERMINISTIC RETURN x * 3",
        "CREATE VIEW extra_view AS SELECT id FROM measurements",
    )


def _assert_restored_objects_work(spec, expected):
    assert definitions(spec) == expected
    views = view_definitions(spec)
    assert set(views) == {"customer_documents", "flagged"}
    for definition in views.values():
        assert f"`{spec.name}`." in definition
        assert "_sbx_" not in definition
    assert leftovers(spec) == []
    names, flagged, _, doubled, _, events = _execute(
        spec,
        "SELECT name FROM customer_documents WHERE id = 3",
        "SELECT COUNT(*) FROM flagged",
        "INSERT INTO customers (id, name, note) VALUES (100000, 'new', 'n')",
        "SELECT doubled(21), greeting('there')",
        "CALL zero_big(4)",
        "SELECT event_name FROM information_schema.events WHERE event_schema = DATABASE()",
    )
    assert names == (("李小龙 #3",),)
    assert flagged[0][0] > 0
    ((note,),) = _execute(spec, "SELECT note FROM customers WHERE id = 100000")[0]
    assert note == "stämped:n"
    assert doubled == ((42, "hi there"),)
    ((zeroed,),) = _execute(spec, "SELECT COUNT(*) FROM measurements WHERE id < 4 AND big = 0")[0]
    assert zeroed == 3
    assert events == (("nightly",),)


def test_it_restores_views_triggers_routines_and_events_in_place_and_undo_brings_back_the_change(
    environment, destination, make_mariadb_database
):
    spec = make_mariadb_database()
    data, objects = _make_source(spec)
    database = database_for(environment, spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    _scribble(spec)
    changed_data, changed_objects = table_checksums(spec), definitions(spec)
    assert (changed_data, changed_objects) != (data, objects)

    restore = run_restore_now(backup=backup, target_type="same")

    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert table_checksums(spec) == data
    _assert_restored_objects_work(spec, objects)

    undo = restore_undo(restore=restore)
    undone = restore_execute(restore=restore_claim(restore_id=undo.id))
    assert undone.status == RestoreStatus.COMPLETED, undone.message
    assert definitions(spec) == changed_objects
    assert set(view_definitions(spec)) == {"customer_documents", "extra_view"}
    assert leftovers(spec) == []


def test_it_restores_views_and_triggers_into_another_environments_database(
    project, environment, destination, make_mariadb_database
):
    source = make_mariadb_database()
    data, objects = _make_source(source)
    backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, source)
    )
    production = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    target = make_mariadb_database()
    fill_mariadb(target, rows=5)
    _execute(target, "CREATE VIEW old_view AS SELECT id FROM customers")
    database_for(production, target)

    restore = run_restore_now(
        backup=backup, target_type="other", target_environment=str(production.id)
    )

    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert table_checksums(target) == data
    _assert_restored_objects_work(target, objects)
    for definition in view_definitions(target).values():
        assert f"`{source.name}`" not in definition


def test_a_failure_after_the_tables_moved_puts_the_target_back_as_it_was(
    environment, destination, make_mariadb_database, monkeypatch
):
    spec = make_mariadb_database()
    _make_source(spec)
    database = database_for(environment, spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    _scribble(spec)
    _execute(
        spec, "CREATE TRIGGER keep_me BEFORE UPDATE ON documents FOR EACH ROW SET NEW.flag = 'k'"
    )
    before_data, before_objects = table_checksums(spec), definitions(spec)
    real_create, calls = mysql_swap.create, []

    def create_failing_on_the_first_trigger(cur, definition):
        if definition.kind == "TRIGGER" and not any(c.startswith("trigger") for c in calls):
            calls.append(definition.label)
            raise pymysql.OperationalError(1105, "injected failure")
        calls.append(definition.label)
        real_create(cur, definition)

    monkeypatch.setattr(mysql_swap, "create", create_failing_on_the_first_trigger)

    restore = run_restore_now(backup=backup, target_type="same")

    assert restore.status == RestoreStatus.FAILED
    assert "injected failure" in restore.message
    assert "The target was left as it was." in restore.message, restore.message
    assert restore.phases[-1]["name"] == "SWAP" and restore.phases[-1]["status"] == "ERROR"
    # The backup's routines and views had been created before the trigger failed.
    assert {"function doubled", "view customer_documents", "view flagged"} <= set(calls)
    assert table_checksums(spec) == before_data
    assert definitions(spec) == before_objects
    assert leftovers(spec) == []
