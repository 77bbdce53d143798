"""PostgreSQL restores keep who may do what: object owners and GRANTs from the dump when the
server has the roles, and the target database's own GRANTs and settings, compared with the
source by content and by catalog."""

from __future__ import annotations

from dataclasses import replace

import pytest
from psycopg import sql

from restores.models import RestoreStatus
from restores.services import backup_test_restore
from tests import factories
from tests.backups.helpers import database_for, run_backup_now
from tests.fixtures.databases import TABLES, PostgreSQLEngine, fill_postgres, table_checksums
from tests.restores.helpers import leftovers, run_restore_now

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _run(spec, *statements, dbname=None) -> None:
    """Run statements (format strings over identifiers, {db} being the database) as postgres."""
    with PostgreSQLEngine().connect(spec, dbname=dbname) as conn:
        conn.autocommit = True
        for statement, *names in statements:
            conn.execute(
                sql.SQL(statement).format(
                    *(sql.Identifier(name) for name in names), db=sql.Identifier(spec.name)
                )
            )


def _catalog(spec) -> dict:
    """Owners and ACLs inside the database, and the database's own ACL, settings, limit."""
    engine = PostgreSQLEngine()
    with engine.connect(spec, dbname="postgres") as conn:
        owner, acl, limit = conn.execute(
            "SELECT pg_get_userbyid(datdba), datacl::text[], datconnlimit"
            " FROM pg_database WHERE datname = %s",
            (spec.name,),
        ).fetchone()
        settings = conn.execute(
            "SELECT coalesce(pg_get_userbyid(nullif(s.setrole, 0)), ''), s.setconfig"
            " FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase"
            " WHERE d.datname = %s ORDER BY 1",
            (spec.name,),
        ).fetchall()
    with engine.connect(spec) as conn:
        relations = conn.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner), c.relacl::text[]"
            " FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
            " AND c.relkind IN ('r', 'S') ORDER BY 1"
        ).fetchall()
        columns = conn.execute(
            "SELECT a.attrelid::regclass::text, a.attname, a.attacl::text[] FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid"
            " WHERE c.relnamespace = 'public'::regnamespace AND a.attacl IS NOT NULL ORDER BY 1, 2"
        ).fetchall()
        defaults = conn.execute(
            "SELECT pg_get_userbyid(defaclrole), defaclobjtype, defaclacl::text[]"
            " FROM pg_default_acl ORDER BY 1, 2"
        ).fetchall()
    return {
        "database": (owner, sorted(acl or []), limit),
        "settings": settings,
        "relations": relations,
        "columns": columns,
        "defaults": defaults,
    }


def _scalar(spec, query, *params):
    with PostgreSQLEngine().connect(spec) as conn:
        return conn.execute(query, params).fetchone()[0]


def _table_owners(spec) -> set[str]:
    with PostgreSQLEngine().connect(spec) as conn:
        rows = conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in rows.fetchall()}


def _give_tables_to(spec, owner: str, reader: str | None = None) -> None:
    statements = [(f"ALTER TABLE {table} OWNER TO {{}}", owner) for table in TABLES]
    if reader:
        statements += [
            ("GRANT SELECT ON customers, documents TO {}", reader),
            ("GRANT UPDATE (note) ON customers TO {}", reader),
            ("ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT SELECT ON TABLES TO {}", owner, reader),
        ]
    _run(spec, *statements)


def _change_data(spec) -> None:
    with PostgreSQLEngine().connect(spec) as conn:
        conn.execute("DELETE FROM customers WHERE id % 3 = 0")
        conn.execute("UPDATE measurements SET big = 0")


def test_a_restore_in_place_gives_objects_their_owners_and_grants_and_keeps_the_databases_own(
    make_postgres_role, make_postgres_database, environment, destination
):
    app, reader, outsider = make_postgres_role(), make_postgres_role(), make_postgres_role()
    spec = make_postgres_database()
    fill_postgres(spec, rows=200)
    _give_tables_to(spec, app, reader)
    _run(
        spec,
        ("ALTER DATABASE {db} OWNER TO {}", app),
        ("REVOKE ALL ON DATABASE {db} FROM PUBLIC",),
        ("GRANT CONNECT ON DATABASE {db} TO {}", reader),
        ("ALTER DATABASE {db} SET search_path = app, 'Mixed Case', public",),
        ("ALTER ROLE {} IN DATABASE {db} SET statement_timeout = '5s'", reader),
        ("ALTER DATABASE {db} CONNECTION LIMIT 40",),
        dbname="postgres",
    )
    original = table_checksums(spec)
    database = database_for(environment, spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    _change_data(spec)
    # Set after the backup, on the database only: applied to the loaded copy at the swap, it
    # cannot break the load (which writes) or the count.
    _run(spec, ("ALTER DATABASE {db} SET default_transaction_read_only = on",), dbname="postgres")
    before = _catalog(spec)
    assert table_checksums(spec) != original

    restore = run_restore_now(backup=backup, target_type="same")

    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert "not restored" not in restore.message and "not copied" not in restore.message
    assert table_checksums(spec) == original
    assert _catalog(spec) == before
    assert _table_owners(spec) == {app}
    assert _scalar(spec, "SELECT has_table_privilege(%s, 'public.customers', 'SELECT')", reader)
    assert not _scalar(spec, "SELECT has_table_privilege(%s, 'measurements', 'SELECT')", reader)
    assert _scalar(
        spec,
        "SELECT count(*) FROM information_schema.role_table_grants"
        " WHERE grantee = %s AND table_schema = 'public' AND privilege_type = 'SELECT'",
        reader,
    ) == len(["customers", "documents"])
    assert _scalar(spec, "SELECT has_column_privilege(%s, 'customers', 'note', 'UPDATE')", reader)
    for role, allowed in ((reader, True), (app, True), (outsider, False)):
        query = "SELECT has_database_privilege(%s, current_database(), 'CONNECT')"
        assert _scalar(spec, query, role) is allowed, role
    assert _scalar(spec, "SHOW default_transaction_read_only") == "on"
    assert _scalar(spec, "SHOW search_path") == 'app, "Mixed Case", public'
    assert leftovers(spec) == []


def _drop_role(spec, role: str) -> None:
    _run(spec, ("REASSIGN OWNED BY {} TO CURRENT_USER", role), ("DROP OWNED BY {}", role))
    _run(spec, ("DROP ROLE {}", role), dbname="postgres")


def test_grants_naming_a_role_the_server_lacks_are_left_out_and_objects_keep_their_owners(
    make_postgres_role, make_postgres_database, environment, destination
):
    app, reader = make_postgres_role(), make_postgres_role()
    spec = make_postgres_database()
    fill_postgres(spec, rows=150)
    _give_tables_to(spec, app, reader)
    original = table_checksums(spec)
    database = database_for(environment, spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    _change_data(spec)
    _drop_role(spec, reader)

    # A test restore says so too, before the day the backup is needed.
    assert backup_test_restore(backup=backup)
    backup.refresh_from_db()
    assert f"roles missing on the target: {reader}" in backup.verification_message

    restore = run_restore_now(backup=backup, target_type="same")

    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert (
        f"{database.name}: roles missing on the target: {reader}; objects keep their owners but "
        "grants were not restored."
    ) in restore.message
    assert table_checksums(spec) == original
    assert _table_owners(spec) == {app}
    catalog = _catalog(spec)
    assert all(acl is None for _, _, acl in catalog["relations"])
    assert catalog["columns"] == [] and catalog["defaults"] == []
    assert leftovers(spec) == []


def test_a_dump_whose_owner_is_missing_loads_owned_by_the_connecting_role_elsewhere(
    make_postgres_role, make_postgres_database, project, environment, destination
):
    app, reader = make_postgres_role(), make_postgres_role()
    source = make_postgres_database()
    fill_postgres(source, rows=120)
    _give_tables_to(source, app, reader)
    original = table_checksums(source)
    backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, source)
    )
    production = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    target = make_postgres_database()
    target_db = database_for(production, target)
    _drop_role(source, app)

    restore = run_restore_now(
        backup=backup, target_type="other", target_environment=str(production.id)
    )

    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert (
        f"{target_db.name}: roles missing on the target: {app}; objects are owned by "
        f"{target.user} and grants were not restored."
    ) in restore.message
    assert table_checksums(target) == original
    assert _table_owners(target) == {target.user}
    assert all(acl is None for _, _, acl in _catalog(target)["relations"])
    assert leftovers(target) == []


def test_owners_a_non_superuser_cannot_restore_fall_back_when_the_dump_can_be_read_again(
    make_postgres_role, make_postgres_database, environment, destination
):
    # The connecting role may act as the owner, but the owner may create in "public" only
    # through a GRANT that pg_restore runs after the ALTER … OWNER TO: no role scan sees that.
    app, runner = make_postgres_role(), make_postgres_role("LOGIN CREATEDB")
    spec = make_postgres_database()
    fill_postgres(spec, rows=100)
    _run(spec, ("GRANT {} TO {}", app, runner), ("ALTER DATABASE {db} OWNER TO {}", runner))
    _run(spec, ("GRANT CREATE ON SCHEMA public TO {}", app))
    _give_tables_to(spec, app)
    original = table_checksums(spec)
    as_runner = replace(spec, user=runner)
    database = database_for(environment, as_runner)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    _change_data(spec)

    restore = run_restore_now(backup=backup, target_type="same")

    # The role scan cannot foresee this; the artifact is read again and loaded without them.
    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert (
        f"{database.name}: restoring owners and grants failed (permission denied for schema "
        f"public), so the dump was loaded again without them; objects are owned by {runner} "
        "and grants were not restored."
    ) in restore.message
    assert table_checksums(spec) == original
    assert _table_owners(spec) == {runner}
    assert leftovers(spec) == []
