"""SQLite engine: online backup API image, atomic verified restore."""

from __future__ import annotations

import io
import os
import sqlite3
from collections.abc import Callable

import pytest

from backups.engines import ConnectionSpec, DumpFailed, RestoreFailed, get_engine
from tests.fixtures.databases import dump_to_bytes, fill_sqlite, table_checksums

pytest_plugins = ["tests.fixtures.databases"]

engine = get_engine("sqlite")


def test_it_reports_version_size_and_row_counts(sqlite_spec: ConnectionSpec) -> None:
    expected = fill_sqlite(sqlite_spec)

    assert engine.server_version(sqlite_spec) == sqlite3.sqlite_version
    assert engine.estimate_size(sqlite_spec) == os.path.getsize(sqlite_spec.name)
    assert engine.row_counts(sqlite_spec) == expected


def test_a_dump_restores_into_a_fresh_file_with_identical_content(
    make_sqlite_database: Callable[[], ConnectionSpec],
) -> None:
    source, target = make_sqlite_database(), make_sqlite_database()
    expected = fill_sqlite(source)

    data, recorded = dump_to_bytes(source)
    engine.restore(target, io.BytesIO(data))

    assert data.startswith(b"SQLite format 3\x00")
    assert recorded == expected
    assert engine.row_counts(target) == expected
    assert table_checksums(target) == table_checksums(source)
    assert sorted(os.listdir(os.path.dirname(target.name))) == sorted(
        os.path.basename(s.name) for s in (source, target)
    )


def test_the_dump_leaves_out_uncommitted_writes_in_progress(sqlite_spec: ConnectionSpec) -> None:
    expected = fill_sqlite(sqlite_spec, rows=50)
    writer = sqlite3.connect(sqlite_spec.name, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("BEGIN")
    writer.execute("INSERT INTO measurements (id, big) VALUES (100000, 1)")

    data, recorded = dump_to_bytes(sqlite_spec)
    writer.execute("COMMIT")
    writer.close()

    assert recorded == expected
    assert engine.row_counts(sqlite_spec)["measurements"] == expected["measurements"] + 1


def test_a_missing_file_fails_the_dump_with_a_clear_message(tmp_path: os.PathLike[str]) -> None:
    spec = ConnectionSpec(engine="sqlite", name=os.path.join(tmp_path, "gone.sqlite3"))

    with pytest.raises(DumpFailed, match="gone.sqlite3' does not exist"):
        engine.open_dump(spec)


def test_restoring_garbage_is_refused_and_leaves_the_target_untouched(
    sqlite_spec: ConnectionSpec,
) -> None:
    expected = fill_sqlite(sqlite_spec, rows=10)

    with pytest.raises(RestoreFailed, match="not a usable SQLite database"):
        engine.restore(sqlite_spec, io.BytesIO(b"not a database at all" * 500))

    assert engine.row_counts(sqlite_spec) == expected
    assert os.listdir(os.path.dirname(sqlite_spec.name)) == [os.path.basename(sqlite_spec.name)]


def test_killing_the_dump_makes_finish_raise(sqlite_spec: ConnectionSpec) -> None:
    fill_sqlite(sqlite_spec, rows=10)
    dump = engine.open_dump(sqlite_spec)

    dump.kill()

    with pytest.raises(DumpFailed, match="aborted"):
        dump.finish()
