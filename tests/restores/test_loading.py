"""The scratch/swap layer on its own: names, versions, the atomic directory exchange,
MariaDB swaps with and without views and triggers, and how a PostgreSQL dump is loaded."""

import io
import os
import subprocess

import pymysql
import pytest

from backups.engines import ConnectionSpec
from restores import loading, mysql_swap
from tests.fixtures.databases import (
    TABLES,
    MySQLEngine,
    PostgreSQLEngine,
    fill_mariadb,
    fill_postgres,
    table_checksums,
)
from tests.restores.helpers import leftovers


def test_scratch_databases_live_on_the_same_server_with_a_bounded_name():
    target = ConnectionSpec(engine="postgresql", host="db", port=5433, user="u", name="x" * 63)
    scratch = loading.scratch_spec(target, "abcd1234")
    assert (scratch.host, scratch.port, scratch.user) == ("db", 5433, "u")
    assert scratch.name == "x" * 40 + "_sbx_restore_abcd1234"
    assert len(scratch.name.encode()) <= 63
    assert loading.kept_spec(target, "abcd1234").name.endswith("_sbx_prev_abcd1234")


def test_scratch_files_sit_beside_the_target_unless_a_directory_is_given(tmp_path):
    target = ConnectionSpec(engine="files", name=str(tmp_path / "site") + "/")
    assert loading.scratch_spec(target, "t1").name == str(tmp_path / ".site.sbx-restore-t1")
    elsewhere = loading.scratch_spec(target, "t1", purpose="verify", directory="/scratch")
    assert elsewhere.name == "/scratch/.site.sbx-verify-t1"


@pytest.mark.parametrize(
    ("engine", "version", "major"),
    [
        ("postgresql", "15.20", (15,)),
        ("postgresql", "16.4 (Debian 16.4-1)", (16,)),
        ("postgresql", "9.6.24", (9, 6)),
        ("mariadb", "10.11.19-MariaDB", (10, 11)),
        ("postgresql", "", None),
        ("postgresql", "devel", None),
    ],
)
def test_major_versions_are_read_the_way_each_engine_numbers_them(engine, version, major):
    assert loading.major_version(engine, version) == major


def test_two_directories_are_exchanged_in_one_step(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "old.txt").write_text("old")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "new.txt").write_text("new")

    assert loading.exchange_paths(str(tmp_path / "b"), str(tmp_path / "a")) is True

    assert [p.name for p in (tmp_path / "a").iterdir()] == ["new.txt"]
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["old.txt"]


def test_a_files_swap_into_a_missing_directory_just_moves_the_scratch_in(tmp_path):
    scratch = tmp_path / ".site.sbx-restore-x"
    scratch.mkdir()
    (scratch / "f").write_text("data")
    target = ConnectionSpec(engine="files", name=str(tmp_path / "site"))

    loading.swap(target, ConnectionSpec(engine="files", name=str(scratch)), tag="x")

    assert (tmp_path / "site" / "f").read_text() == "data"
    assert not scratch.exists()


def _mariadb(spec, *statements):
    conn = MySQLEngine("mariadb").connect(spec)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            return cur.fetchall()
    finally:
        conn.close()


@pytest.mark.django_db
def test_mariadb_plain_tables_swap_in_one_rename_without_touching_objects(
    make_mariadb_database, monkeypatch
):
    target, scratch = make_mariadb_database(), make_mariadb_database()
    fill_mariadb(target, rows=10)
    fill_mariadb(scratch, rows=30)
    _mariadb(scratch, "CREATE SEQUENCE ids")
    expected = table_checksums(scratch)

    def unexpected(*args):
        raise AssertionError(f"no object statements in a plain swap: {args}")

    monkeypatch.setattr(mysql_swap, "create", unexpected)
    monkeypatch.setattr(mysql_swap, "drop", unexpected)
    loading.swap(target, scratch, tag="t1")

    assert table_checksums(target) == expected
    assert _mariadb(target, "SELECT NEXTVAL(ids)") == ((1,),)
    assert leftovers(target) == []


@pytest.mark.django_db
def test_mariadb_views_and_triggers_are_recreated_in_the_target_after_the_tables_move(
    make_mariadb_database,
):
    target, scratch = make_mariadb_database(), make_mariadb_database()
    fill_mariadb(target, rows=10)
    fill_mariadb(scratch, rows=30)
    _mariadb(
        target,
        "CREATE TRIGGER old_bump BEFORE INSERT ON customers FOR EACH ROW SET NEW.note = 'old'",
        "CREATE VIEW old_view AS SELECT id FROM customers",
    )
    _mariadb(
        scratch,
        "CREATE TRIGGER bump BEFORE INSERT ON customers FOR EACH ROW SET NEW.note = 'x'",
        # Read back by name, a_over_b comes first and fails until b_base exists.
        "CREATE VIEW b_base AS SELECT id FROM customers WHERE id < 5",
        "CREATE VIEW a_over_b AS SELECT id FROM b_base",
    )
    expected = table_checksums(scratch)

    loading.swap(target, scratch, tag="t1")

    assert table_checksums(target) == expected
    views = _mariadb(
        target,
        "SELECT table_name, view_definition FROM information_schema.views"
        " WHERE table_schema = DATABASE() ORDER BY table_name",
    )
    assert [name for name, _ in views] == ["a_over_b", "b_base"]
    assert all(f"`{target.name}`." in text and "_sbx_" not in text for _, text in views)
    assert _mariadb(target, "SELECT COUNT(*) FROM a_over_b") == ((4,),)
    _mariadb(target, "INSERT INTO customers (id, name) VALUES (1000, 'n')")
    assert _mariadb(target, "SELECT note FROM customers WHERE id = 1000") == (("x",),)
    assert leftovers(target) == []


@pytest.mark.django_db
def test_mariadb_swap_that_cannot_be_undone_says_what_state_the_target_is_in(
    make_mariadb_database, monkeypatch
):
    target, scratch = make_mariadb_database(), make_mariadb_database()
    fill_mariadb(target, rows=10)
    fill_mariadb(scratch, rows=30)
    before = table_checksums(target)
    for spec in (target, scratch):
        _mariadb(
            spec, "CREATE TRIGGER bump BEFORE INSERT ON customers FOR EACH ROW SET NEW.note = 'x'"
        )

    def refuse_triggers(cur, definition):
        raise pymysql.OperationalError(1105, "no triggers today")

    monkeypatch.setattr(mysql_swap, "create", refuse_triggers)
    with pytest.raises(loading.SwapIncomplete, match="its tables are back.*trigger bump"):
        loading.swap(target, scratch, tag="t1")

    assert table_checksums(target) == before
    assert leftovers(target) == []


def test_only_views_are_retargeted_and_only_the_quoted_scratch_name():
    scratch, target = "shop_sbx_restore_ab12", "shop"
    view = mysql_swap.Definition(
        kind="VIEW",
        name="v",
        statement="CREATE VIEW `shop_sbx_restore_ab12`.`v` AS select `shop_sbx_restore_ab12`.`t`"
        ".`id` AS `id`, 'shop_sbx_restore_ab12' AS `label` from `shop_sbx_restore_ab12`.`t`",
        charset="utf8mb4",
        collation="utf8mb4_general_ci",
    )
    trigger = mysql_swap.Definition(
        kind="TRIGGER",
        name="t",
        statement="CREATE TRIGGER t BEFORE INSERT ON `shop_sbx_restore_ab12`.t"
        " FOR EACH ROW SET @a = 1",
        charset="utf8mb4",
        collation="utf8mb4_general_ci",
    )

    assert mysql_swap.retarget(view, scratch, target).statement == (
        "CREATE VIEW `shop`.`v` AS select `shop`.`t`.`id` AS `id`,"
        " 'shop_sbx_restore_ab12' AS `label` from `shop`.`t`"
    )
    assert mysql_swap.retarget(trigger, scratch, target) == trigger


@pytest.mark.django_db
def test_a_postgresql_scratch_takes_the_targets_locale_first_and_its_access_at_the_swap(
    make_postgres_database, make_postgres_role
):
    from dataclasses import replace

    from psycopg import sql

    target = make_postgres_database()
    engine = PostgreSQLEngine()
    query = (
        "SELECT pg_encoding_to_char(encoding), datcollate, datctype,"
        " (SELECT setconfig FROM pg_db_role_setting WHERE setdatabase = d.oid AND setrole = 0)"
        " FROM pg_database d WHERE datname = %s"
    )
    access_query = (
        "SELECT ARRAY(SELECT unnest(datacl)::text ORDER BY 1),"
        " (SELECT array_agg(setconfig::text) FROM pg_db_role_setting"
        " WHERE setdatabase = d.oid AND setrole <> 0) FROM pg_database d WHERE datname = %s"
    )
    with engine.connect(target, dbname="postgres") as conn:
        conn.autocommit = True
        name = sql.Identifier(target.name)
        conn.execute(sql.SQL("DROP DATABASE {}").format(name))
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 ENCODING 'SQL_ASCII'"
                " LC_COLLATE 'C' LC_CTYPE 'C'"
            ).format(name)
        )
        conn.execute(sql.SQL("ALTER DATABASE {} SET work_mem = '7MB'").format(name))
        conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = a, 'B c'").format(name))
        reader = sql.Identifier(make_postgres_role())
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(name, reader))
        conn.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET work_mem = '3MB'").format(reader, name)
        )
        access = conn.execute(access_query, (target.name,)).fetchone()
    scratch = replace(target, name=target.name + "_sbx_restore_t1")
    try:
        loading.prepare(scratch, like=target)
        with engine.connect(target, dbname="postgres") as conn:
            # No settings during the load: one such as default_transaction_read_only breaks it.
            assert conn.execute(query, (scratch.name,)).fetchone() == ("SQL_ASCII", "C", "C", None)

        assert loading.swap(target, scratch, tag="t1") == []

        with engine.connect(target, dbname="postgres") as conn:
            row = conn.execute(query, (target.name,)).fetchone()
            assert conn.execute(access_query, (target.name,)).fetchone() == access
        assert row == ("SQL_ASCII", "C", "C", ["work_mem=7MB", 'search_path=a, "B c"'])
    finally:
        loading.discard(scratch)


# --- PostgreSQL: the data streamed, the post-data section in parallel ----------------------

POST_DATA_OBJECTS = [
    "CREATE INDEX customers_name_idx ON customers (name)",
    "CREATE TABLE orders (id integer PRIMARY KEY, customer integer REFERENCES customers (id))",
    "INSERT INTO orders SELECT id, id FROM customers",
    "CREATE MATERIALIZED VIEW rich AS SELECT id FROM customers WHERE balance > 0",
    "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN NEW.flag := 'x'; RETURN NEW; END $$",
    "CREATE TRIGGER documents_stamp BEFORE INSERT ON documents FOR EACH ROW EXECUTE"
    " FUNCTION stamp()",
]
# What the post-data section builds, as the catalogue names it.
POST_DATA_CATALOGUE = (
    "SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname = 'public'"
    " UNION ALL SELECT 'constraint ' || conname FROM pg_constraint"
    " WHERE connamespace = 'public'::regnamespace"
    " UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal"
    " UNION ALL SELECT 'populated ' || matviewname FROM pg_matviews WHERE ispopulated"
    " ORDER BY 1"
)


def _dump(spec) -> bytes:
    engine = PostgreSQLEngine()
    env = {**os.environ, **engine.tool_env(spec)}
    return subprocess.run(engine.dump_argv(spec), env=env, capture_output=True, check=True).stdout


def _catalogue(spec) -> list[str]:
    with PostgreSQLEngine().connect(spec) as conn:
        return [row[0] for row in conn.execute(POST_DATA_CATALOGUE)]


def _source_with_post_data(make_postgres_database):
    source = make_postgres_database()
    fill_postgres(source)
    with PostgreSQLEngine().connect(source) as conn:
        for statement in POST_DATA_OBJECTS:
            conn.execute(statement)
    return source


@pytest.mark.django_db
def test_a_postgresql_load_streams_the_data_and_builds_the_post_data_section_in_parallel(
    make_postgres_database, tmp_path, monkeypatch
):
    source = _source_with_post_data(make_postgres_database)
    scratch = make_postgres_database()
    runs = []
    real_run_restore = loading.run_restore

    def recording(argv, stream, **kwargs):
        runs.append((list(argv), stream is not None))
        return real_run_restore(argv, stream, **kwargs)

    monkeypatch.setattr(loading, "run_restore", recording)

    loading.load(scratch, io.BytesIO(_dump(source)), tmp_dir=str(tmp_path))

    assert table_checksums(scratch, (*TABLES, "orders")) == table_checksums(
        source, (*TABLES, "orders")
    )
    built = _catalogue(scratch)
    assert built == _catalogue(source)
    assert "index customers_name_idx" in built
    assert "constraint orders_customer_fkey" in built
    assert "populated rich" in built
    (streamed, streamed_stdin), (post_data, post_data_stdin) = runs
    assert "--section=data" in streamed and "--single-transaction" in streamed
    assert streamed_stdin
    assert "--section=post-data" in post_data and f"--jobs={loading.POST_DATA_JOBS}" in post_data
    assert not post_data_stdin
    # Its table of contents is read from memory: nothing of the dump is left on disk.
    assert post_data[-1].startswith("/dev/fd/")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.django_db
def test_a_postgresql_load_whose_post_data_section_fails_raises_naming_the_failure(
    make_postgres_database, tmp_path
):
    source = _source_with_post_data(make_postgres_database)
    scratch = make_postgres_database()
    with PostgreSQLEngine().connect(scratch) as conn:
        # Takes the index's name: the data loads, the post-data section cannot.
        conn.execute("CREATE TABLE customers_name_idx (id integer)")

    with pytest.raises(loading.RestoreFailed, match="customers_name_idx"):
        loading.load(scratch, io.BytesIO(_dump(source)), tmp_dir=str(tmp_path))


@pytest.mark.django_db
def test_a_postgresql_load_with_one_job_is_one_streamed_pg_restore(
    make_postgres_database, tmp_path, monkeypatch
):
    source = _source_with_post_data(make_postgres_database)
    scratch = make_postgres_database()
    monkeypatch.setattr(loading, "POST_DATA_JOBS", 1)

    loading.load(scratch, io.BytesIO(_dump(source)), tmp_dir=str(tmp_path))

    assert _catalogue(scratch) == _catalogue(source)
    assert table_checksums(scratch) == table_checksums(source)
