"""Row counts and per-table checksums read from pg_dump's stream (backups.pgdump_stream),
against the real server: they must equal count(*) and a hash of COPY … TO STDOUT."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable

import pytest
from psycopg import sql

from backups.engines import ConnectionSpec
from backups.engines.postgresql import PostgreSQLEngine
from backups.pgdump_stream import DumpStream, copy_columns
from restores import loading
from tests.fixtures.databases import dump_to_bytes

pytest_plugins = ["tests.fixtures.databases"]

engine = PostgreSQLEngine()

SHAPES = [
    "CREATE TABLE plain (id integer PRIMARY KEY, name text)",
    "INSERT INTO plain SELECT g, 'name ' || g FROM generate_series(1, 500) g",
    "CREATE TABLE empty (id integer)",
    # NULLs, unicode, tabs and newlines in values, bytea with NULs, floats, intervals, times
    """CREATE TABLE odd (id integer, label text, data bytea, ratio float8, small real,
        span interval, at timestamptz, day date, tags text[], doc jsonb)""",
    r"""INSERT INTO odd VALUES
        (1, 'Zoë – ☃ 日本語', '\x00ff00', 0.1, 1.5e-7, '1 day 02:03:04', '2026-03-01 12:00+01',
         '2026-03-01', ARRAY['a', NULL, 'b c'], '{"k": [1, 2.50, null]}'),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (3, E'tab\there\nnew line \\ backslash', '', 'NaN', '-Infinity', '-3 mons', 'infinity',
         '0044-03-15 BC', '{}', '[]'),
        (4, '', '\x0a0a00', 1e308, 3.4e38, '0', '2026-12-07 01:02:03.456789+00', '2026-12-07',
         ARRAY[''], '"\\.\n"')""",
    # More than the pipe (and more than one stream read) holds
    "CREATE TABLE big (id integer, filler text)",
    "INSERT INTO big SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 12000) g",
    # Values TOASTed (compressed in line, and out of line)
    "CREATE TABLE toasted (id integer, doc text)",
    "INSERT INTO toasted SELECT g, repeat(md5(g::text), 200) FROM generate_series(1, 300) g",
    "INSERT INTO toasted SELECT g, string_agg(md5(g::text || i::text), '') FROM"
    " generate_series(301, 340) g, generate_series(1, 400) i GROUP BY g",
    # Rows of exactly 10 bytes: their chunk headers hold a newline byte (0x0a)
    "CREATE TABLE tens (v text)",
    "INSERT INTO tens SELECT lpad(g::text, 9, '0') FROM generate_series(1, 3000) g",
    # A partitioned table (its partitions hold the data) and a second schema, quoted names
    "CREATE TABLE measures (at date, v numeric) PARTITION BY RANGE (at)",
    "CREATE TABLE measures_2025 PARTITION OF measures"
    " FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
    "CREATE TABLE measures_2026 PARTITION OF measures"
    " FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    "INSERT INTO measures SELECT date '2025-06-01' + g, g / 7.0 FROM generate_series(1, 400) g",
    'CREATE SCHEMA "Sales Dept"',
    '''CREATE TABLE "Sales Dept"."Order ""Lines""" (id integer GENERATED ALWAYS AS IDENTITY,
        qty integer, total integer GENERATED ALWAYS AS (qty * 2) STORED, "Note" text)''',
    '''INSERT INTO "Sales Dept"."Order ""Lines""" (qty, "Note")
        SELECT g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END FROM generate_series(1, 90) g''',
    "CREATE SEQUENCE loose_seq",
    "SELECT setval('loose_seq', 42)",
]


def make_shapes(spec: ConnectionSpec) -> None:
    with engine.connect(spec) as conn:
        for statement in SHAPES:
            conn.execute(statement)


def source_truth(spec: ConnectionSpec) -> dict[str, tuple[int, str]]:
    """count(*) and the SHA-256 of COPY TO STDOUT of every table, with its own session:
    the columns pg_dump copies (not generated ones), in their order."""
    truth = {}
    with engine.connect(spec) as conn:
        conn.autocommit = True
        for statement in (
            "SET extra_float_digits = 3",
            "SET DateStyle = ISO",
            "SET IntervalStyle = postgres",
            "SET TimeZone = 'UTC'",
        ):
            conn.execute(statement)
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.relkind = 'r'"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_toast%%'"
        ).fetchall()
        for schema, table in tables:
            columns = [
                name
                for (name,) in conn.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
                    " AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
                    [sql.Identifier(schema, table).as_string(conn)],
                )
            ]
            relation = sql.Identifier(schema, table)
            (count,) = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(relation)).fetchone()
            query = sql.SQL("COPY {} ({}) TO STDOUT").format(
                relation, sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            digest = hashlib.sha256()
            with conn.cursor().copy(query) as copy:
                for data in copy:
                    digest.update(data)
            truth[f"{schema}.{table}"] = (count, digest.hexdigest())
    return truth


@pytest.mark.postgres
def test_counts_and_checksums_read_from_the_dump_equal_count_and_a_copy_hash_of_the_source(
    postgres_spec: ConnectionSpec,
) -> None:
    make_shapes(postgres_spec)

    dump = engine.open_dump(postgres_spec)
    with dump:
        size = sum(len(chunk) for chunk in iter(lambda: dump.stdout.read(64 * 1024), b""))
        dump.finish()

    truth = source_truth(postgres_spec)
    assert size > 1 << 20  # the big table went through several reads
    assert set(dump.row_counts) == set(truth) == set(dump.table_checksums)
    assert "public.measures_2025" in truth and 'Sales Dept.Order "Lines"' in truth
    assert dump.row_counts == {key: count for key, (count, _) in truth.items()}
    assert {key: entry["sha256"] for key, entry in dump.table_checksums.items()} == {
        key: digest for key, (_, digest) in truth.items()
    }
    assert dump.table_checksums["public.empty"]["rows"] == 0
    lines = dump.table_checksums['Sales Dept.Order "Lines"']
    assert lines["columns"] == ["id", "qty", "Note"]  # the generated column is not copied
    assert lines["encoding"] == "UTF8"


@pytest.mark.postgres
def test_a_restored_copy_hashes_to_what_the_backup_recorded(
    make_postgres_database: Callable[[], ConnectionSpec],
) -> None:
    source, target = make_postgres_database(), make_postgres_database()
    make_shapes(source)
    data, counts = dump_to_bytes(source)
    recorded = DumpStream()
    recorded.feed(data)
    recorded.finish()

    loading.load(target, io.BytesIO(data))
    tables = [(table.schema, table.table, table.columns) for table in recorded.tables.values()]
    restored = engine.copy_digests(target, tables, recorded.encoding)

    assert restored == {key: entry["sha256"] for key, entry in recorded.checksums().items()}
    assert engine.row_counts(target) == counts


@pytest.mark.postgres
def test_any_cut_of_the_stream_reads_the_same(postgres_spec: ConnectionSpec) -> None:
    make_shapes(postgres_spec)
    data, _ = dump_to_bytes(postgres_spec)
    whole = DumpStream()
    whole.feed(data)
    whole.finish()

    for size in (1, 2, 3, 5, 7, 4093, 65536):
        cut = DumpStream()
        for start in range(0, len(data) if size > 3 else 300_000, size):
            cut.feed(data[start : start + size])
        if size <= 3:  # byte by byte through the TOC and the first tables, then the rest
            cut.feed(data[300_000:])
        cut.finish()
        assert cut.problem is None, (size, cut.problem)
        assert cut.checksums() == whole.checksums(), size


@pytest.mark.postgres
def test_a_dump_format_the_stream_cannot_read_falls_back_to_counting_after_the_dump(
    postgres_spec: ConnectionSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_shapes(postgres_spec)
    monkeypatch.setattr("backups.pgdump_stream.VERSIONS", ((1, 0), (1, 1)))

    data, counts = dump_to_bytes(postgres_spec)

    assert data.startswith(b"PGDMP")
    assert counts == engine.row_counts(postgres_spec)
    assert counts["public.big"] == 12000


def test_a_stream_that_is_not_a_readable_dump_records_nothing_and_says_why() -> None:
    garbage = DumpStream()
    garbage.feed(b"this is not a dump" * 100)
    garbage.finish()
    compressed = DumpStream()
    # A custom-format header of archive version 1.14 whose compression int is 6.
    compressed.feed(b"PGDMP\x01\x0e\x00\x04\x08\x01\x00\x06\x00\x00\x00" + b"\x00" * 64)
    compressed.finish()
    cut_short = DumpStream()
    cut_short.feed(b"PGDMP\x01\x0e\x00\x04\x08\x01")
    cut_short.finish()

    assert garbage.problem == "not a pg_dump custom-format archive"
    assert compressed.problem == "the dump's data is compressed"
    assert cut_short.problem is not None and "ended" in cut_short.problem
    assert garbage.checksums() == compressed.checksums() == {}


def test_copy_statements_are_read_as_pg_dump_quotes_them() -> None:
    assert copy_columns('COPY public.t (id, "Na""me", "x y") FROM stdin;\n') == (
        "public",
        "t",
        ["id", 'Na"me', "x y"],
    )
    assert copy_columns('COPY "Sales Dept"."Order ""Lines""" (id) FROM stdin;\n') == (
        "Sales Dept",
        'Order "Lines"',
        ["id"],
    )
    assert copy_columns("COPY public.nocols  FROM stdin;\n") == ("public", "nocols", [])
    assert copy_columns("INSERT INTO x VALUES (1);") is None
