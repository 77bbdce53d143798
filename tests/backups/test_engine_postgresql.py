"""PostgreSQL engine against the real server and pg_dump/pg_restore."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable

import pytest

from backups.engines import ConnectionSpec, DumpFailed, EngineError, RestoreFailed
from backups.engines.postgresql import PostgreSQLEngine
from restores import loading
from tests.fixtures.databases import (
    dump_to_bytes,
    fill_postgres,
    table_checksums,
)

pytest_plugins = ["tests.fixtures.databases"]

engine = PostgreSQLEngine()
SECRET = "s3cr3t-do-not-leak"


def spec_with_password(**changes: object) -> ConnectionSpec:
    fields = {"engine": "postgresql", "host": "db.internal", "port": 6543, "user": "backup"}
    fields |= {"password": SECRET, "name": "shop", **changes}
    return ConnectionSpec(**fields)  # type: ignore[arg-type]


def fill_large_table(spec: ConnectionSpec, megabytes: int = 12) -> None:
    # Uncompressed in the dump (-Z0), so it outgrows the pipe and pg_dump blocks on writes.
    with engine.connect(spec) as conn:
        conn.execute("CREATE TABLE big (id integer PRIMARY KEY, filler text)")
        conn.execute(
            "INSERT INTO big SELECT g, repeat(md5(g::text), 320) FROM generate_series(1, %s) g",
            (megabytes * 100,),
        )


# -- pure argv builders -----------------------------------------------------------------------


def test_dump_argv_uses_custom_format_without_compression_and_no_password() -> None:
    argv = engine.dump_argv(spec_with_password())

    assert argv[0] == "pg_dump"
    assert "--format=custom" in argv and "--compress=0" in argv
    assert ["--host=db.internal", "--port=6543", "--username=backup", "--dbname=shop"] == [
        a for a in argv if a.startswith(("--host", "--port", "--username", "--dbname"))
    ]
    assert not any(SECRET in arg for arg in argv)


def test_restore_argv_is_one_transaction_reading_stdin_by_default() -> None:
    argv = engine.restore_argv(spec_with_password())

    assert argv[0] == "pg_restore"
    assert {"--no-owner", "--no-privileges", "--single-transaction"} <= set(argv)
    assert not any(a.startswith("--jobs") for a in argv)
    assert not any(SECRET in arg for arg in argv)


def test_restore_argv_restores_owners_and_grants_only_when_asked() -> None:
    both = engine.restore_argv(spec_with_password(), owners=True, privileges=True)
    owners_only = engine.restore_argv(spec_with_password(), owners=True)

    assert not {"--no-owner", "--no-privileges"} & set(both)
    assert "--no-owner" not in owners_only and "--no-privileges" in owners_only


def test_the_schema_argv_prints_sql_without_a_server() -> None:
    assert engine.schema_argv() == ["pg_restore", "--schema-only", "--file=-"]
    assert engine.schema_argv("/tmp/x.pgdump")[-1] == "/tmp/x.pgdump"


def test_restore_argv_with_jobs_reads_a_file() -> None:
    argv = engine.restore_argv(spec_with_password(), jobs=4, path="/tmp/x.pgdump")

    assert "--jobs=4" in argv and argv[-1] == "/tmp/x.pgdump"
    assert "--single-transaction" not in argv


def test_restore_argv_restores_only_the_sections_asked_for() -> None:
    streamed = engine.restore_argv(spec_with_password(), sections=("pre-data", "data"))
    post_data = engine.restore_argv(
        spec_with_password(), sections=("post-data",), jobs=2, path="/dev/fd/5"
    )

    assert [a for a in streamed if a.startswith("--section")] == [
        "--section=pre-data",
        "--section=data",
    ]
    assert "--single-transaction" in streamed
    assert "--section=post-data" in post_data and "--jobs=2" in post_data
    assert post_data[-1] == "/dev/fd/5"


def test_the_password_travels_in_the_environment() -> None:
    env = engine.tool_env(spec_with_password(options={"sslmode": "require"}))

    assert env["PGPASSWORD"] == SECRET
    assert env["PGSSLMODE"] == "require"


# -- against the server -----------------------------------------------------------------------


@pytest.mark.postgres
def test_it_reports_version_size_and_row_counts(postgres_spec: ConnectionSpec) -> None:
    expected = fill_postgres(postgres_spec)

    assert engine.server_version(postgres_spec).split(".")[0].isdigit()
    assert (engine.estimate_size(postgres_spec) or 0) > 0
    assert engine.row_counts(postgres_spec) == expected
    engine.check_connection(postgres_spec)


@pytest.mark.postgres
def test_a_dump_restores_into_a_fresh_database_with_identical_content(
    make_postgres_database: Callable[[], ConnectionSpec],
) -> None:
    source, target = make_postgres_database(), make_postgres_database()
    expected = fill_postgres(source)

    data, recorded = dump_to_bytes(source)
    assert data[:5] == b"PGDMP"
    loading.load(target, io.BytesIO(data))

    assert recorded == expected
    assert engine.row_counts(target) == expected
    assert table_checksums(target) == table_checksums(source)


@pytest.mark.postgres
def test_a_load_streams_into_one_pg_restore_leaving_nothing_on_disk(
    make_postgres_database: Callable[[], ConnectionSpec],
    tmp_path: os.PathLike[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, target = make_postgres_database(), make_postgres_database()
    expected = fill_postgres(source)
    data, _ = dump_to_bytes(source)
    monkeypatch.setenv("TMPDIR", str(tmp_path))

    loading.load(target, io.BytesIO(data))

    assert engine.row_counts(target) == expected
    assert table_checksums(target) == table_checksums(source)
    assert os.listdir(tmp_path) == []


@pytest.mark.postgres
@pytest.mark.slow
def test_row_counts_match_the_dump_while_rows_are_inserted_concurrently(
    make_postgres_database: Callable[[], ConnectionSpec],
) -> None:
    source, target = make_postgres_database(), make_postgres_database()
    fill_postgres(source)
    fill_large_table(source, megabytes=8)
    with engine.connect(source) as conn:
        conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")
    stop = threading.Event()
    inserted = threading.Event()

    def insert_forever() -> None:
        with engine.connect(source) as conn:
            conn.autocommit = True
            while not stop.is_set():
                conn.execute("INSERT INTO events DEFAULT VALUES")
                conn.execute("UPDATE customers SET note = 'changed' WHERE id = 1")
                inserted.set()

    writer = threading.Thread(target=insert_forever)
    writer.start()
    try:
        assert inserted.wait(10)
        dump = engine.open_dump(source)
        chunks = []
        with dump:
            while chunk := dump.stdout.read(256 * 1024):
                chunks.append(chunk)
                time.sleep(0.005)  # a slow consumer, so inserts keep landing during the dump
            dump.finish()
    finally:
        stop.set()
        writer.join()

    loading.load(target, io.BytesIO(b"".join(chunks)))
    restored = engine.row_counts(target)
    assert restored == dump.row_counts
    assert engine.row_counts(source)["public.events"] > dump.row_counts["public.events"]


@pytest.mark.postgres
@pytest.mark.slow
def test_killing_the_dump_midway_makes_finish_raise_and_releases_the_snapshot(
    postgres_spec: ConnectionSpec,
) -> None:
    fill_large_table(postgres_spec)
    dump = engine.open_dump(postgres_spec)
    assert dump.stdout.read(64 * 1024)

    dump.kill()
    dump.kill()  # idempotent

    with pytest.raises(DumpFailed, match="aborted"):
        dump.finish()
    with engine.connect(postgres_spec) as conn:
        others = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert others == (0,)


@pytest.mark.postgres
@pytest.mark.slow
def test_a_database_dropped_during_the_dump_fails_with_the_tools_stderr(
    postgres_spec: ConnectionSpec,
) -> None:
    fill_large_table(postgres_spec)
    dump = engine.open_dump(postgres_spec)
    assert dump.stdout.read(64 * 1024)

    engine.drop_database(postgres_spec)
    dump.stdout.read()

    with pytest.raises(DumpFailed) as failure:
        dump.finish()
    message = str(failure.value)
    assert message.startswith("pg_dump ")
    assert "terminat" in message or "closed the connection" in message


@pytest.mark.postgres
def test_a_missing_database_fails_the_dump_with_a_clear_message(
    postgres_spec: ConnectionSpec,
) -> None:
    # postgres_spec only proves the server is up; the dump targets a database that is not.
    spec = ConnectionSpec(**{**postgres_spec.__dict__, "name": "sbx_test_does_not_exist"})

    # No connection of its own any more: pg_dump's exit says it, with its stderr.
    with pytest.raises(DumpFailed, match='database "sbx_test_does_not_exist" does not exist'):
        with engine.open_dump(spec) as dump:
            dump.stdout.read()
            dump.finish()


@pytest.mark.postgres
def test_an_unknown_role_is_reported_clearly(postgres_spec: ConnectionSpec) -> None:
    # The local test server trusts 127.0.0.1, so a wrong password cannot fail here;
    # an unknown role exercises the same error path.
    spec = ConnectionSpec(**{**postgres_spec.__dict__, "user": "sbx_no_such_role"})

    with pytest.raises(EngineError, match='role "sbx_no_such_role" does not exist'):
        engine.check_connection(spec)


def test_a_server_that_is_down_is_reported_clearly() -> None:
    spec = ConnectionSpec(engine="postgresql", host="127.0.0.1", port=1, user="x", name="shop")

    with pytest.raises(EngineError, match="cannot connect to PostgreSQL at 127.0.0.1:1"):
        engine.check_connection(spec)


@pytest.mark.postgres
def test_restoring_garbage_fails_with_pg_restore_stderr(postgres_spec: ConnectionSpec) -> None:
    # The load reads the table of contents first (the role scan): that is where garbage stops.
    refused = "pg_restore could not read the dump's table of contents: .*valid archive"
    with pytest.raises(RestoreFailed, match=refused):
        loading.load(postgres_spec, io.BytesIO(b"this is not a dump" * 100))
