"""The two-step swap on its own, per engine on the real servers: swap in keeping the previous
target under its reserved name, then drop it or put it back, also from the states a worker
killed midway leaves."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

import pytest

from backups.engines import ConnectionSpec
from restores import loading, mysql_swap
from restores.plan import Member
from restores.services.steps import _swap_failure
from tests.backups.helpers import make_files_tree, tree_fingerprint
from tests.fixtures.databases import (
    MySQLEngine,
    PostgreSQLEngine,
    fill_mariadb,
    fill_postgres,
    fill_sqlite,
    table_checksums,
)
from tests.restores.helpers import leftovers
from tests.restores.test_restore_mariadb_objects import OBJECTS, definitions

TAG = "k33p1ng0"
FILL = {"postgresql": fill_postgres, "mariadb": fill_mariadb, "sqlite": fill_sqlite}


def _pair(engine, request, tmp_path):
    """A filled target and a scratch copy beside it holding other data."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    if engine == "files":
        target = ConnectionSpec(engine="files", name=str(make_files_tree(tmp_path / "site")))
        scratch = loading.scratch_spec(target, TAG)
        os.makedirs(scratch.name)
        with open(os.path.join(scratch.name, "only-in-the-backup.txt"), "w") as handle:
            handle.write("restored")
        return target, scratch
    if engine == "sqlite":
        target = ConnectionSpec(engine="sqlite", name=str(tmp_path / "app.sqlite3"))
    else:
        make = {"postgresql": "make_postgres_database", "mariadb": "make_mariadb_database"}
        target = request.getfixturevalue(make[engine])()
    scratch = loading.scratch_spec(target, TAG)
    loading.prepare(scratch, like=target)
    FILL[engine](target, rows=40)
    FILL[engine](scratch, rows=70)
    return target, scratch


def _state(spec):
    if spec.engine == "files":
        return tree_fingerprint(spec.name)
    return table_checksums(spec)


def _kept_exists(kept: ConnectionSpec) -> bool:
    if kept.engine == "postgresql":
        with PostgreSQLEngine().connect(kept, dbname="postgres") as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (kept.name,))
            return row.fetchone() is not None
    if kept.engine == "mariadb":
        conn = MySQLEngine("mariadb").connect(kept, database="")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                    (kept.name,),
                )
                return cur.fetchone() is not None
        finally:
            conn.close()
    return os.path.lexists(kept.name)


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ["postgresql", "mariadb", "sqlite", "files"])
def test_each_engine_keeps_the_previous_target_until_it_is_put_back_or_dropped(
    engine, request, tmp_path
):
    target, scratch = _pair(engine, request, tmp_path)
    before, restored = _state(target), _state(scratch)

    swapped = loading.swap_keeping(target, scratch, tag=TAG)

    assert swapped.kept == loading.kept_spec(target, TAG)
    assert _state(target) == restored
    assert _kept_exists(swapped.kept)
    assert loading.put_back(target, swapped.kept, tag=TAG) is True
    assert _state(target) == before
    assert leftovers(target) == []
    assert loading.put_back(target, swapped.kept, tag=TAG) is False  # nothing kept any more

    target, scratch = _pair(engine, request, tmp_path / "again")
    restored = _state(scratch)
    swapped = loading.swap_keeping(target, scratch, tag=TAG)
    loading.drop_kept(swapped.kept)

    assert _state(target) == restored
    assert leftovers(target) == []


@pytest.mark.django_db
def test_a_mariadb_target_gets_its_own_views_triggers_routines_and_events_back(
    make_mariadb_database,
):
    target, scratch = make_mariadb_database(), make_mariadb_database()
    fill_mariadb(target, rows=60)
    _run(target, *OBJECTS)
    fill_mariadb(scratch, rows=20)
    _run(scratch, "CREATE VIEW other AS SELECT id FROM measurements")
    before_data, before_objects = table_checksums(target), definitions(target)

    swapped = loading.swap_keeping(target, scratch, tag=TAG)
    assert set(definitions(target)) == {("VIEW", "other")}
    loading.put_back(target, swapped.kept, tag=TAG)

    assert table_checksums(target) == before_data
    assert definitions(target) == before_objects
    assert leftovers(target) == [] and leftovers(scratch) == []


@pytest.mark.django_db
def test_a_mariadb_swap_killed_before_its_tables_moved_is_put_back_from_its_record(
    make_mariadb_database,
):
    """The state a worker killed just before RENAME TABLE leaves: the kept database holds
    the record, the target's triggers and views are already dropped, its tables stay."""
    target = make_mariadb_database()
    fill_mariadb(target, rows=60)
    _run(target, *OBJECTS)
    before_data, before_objects = table_checksums(target), definitions(target)
    kept = loading.kept_spec(target, TAG)
    conn = MySQLEngine("mariadb").connect(target, database="")
    try:
        with conn.cursor() as cur:
            old = mysql_swap.read_contents(cur, target.name)
            cur.execute(f"CREATE DATABASE `{kept.name}`")
            mysql_swap._record(cur, kept.name, old)
            for definition in old.of("TRIGGER", "VIEW"):
                mysql_swap.drop(cur, target.name, definition.kind, definition.name)
    finally:
        conn.close()

    assert loading.put_back(target, kept, tag=TAG) is True

    assert table_checksums(target) == before_data
    assert definitions(target) == before_objects
    assert leftovers(target) == []


@pytest.mark.django_db
def test_a_sqlite_swap_killed_between_the_link_and_the_replace_leaves_the_target_alone(
    tmp_path,
):
    target = ConnectionSpec(engine="sqlite", name=str(tmp_path / "app.sqlite3"))
    fill_sqlite(target, rows=30)
    before = table_checksums(target)
    kept = loading.kept_spec(target, TAG)
    os.link(target.name, kept.name)

    assert loading.put_back(target, kept, tag=TAG) is True

    assert table_checksums(target) == before
    assert leftovers(target) == []


def test_a_files_swap_killed_between_the_exchange_and_the_rename_is_put_back(tmp_path):
    """A note beside the target tells the previous tree, left under the scratch's name,
    from a scratch never swapped in."""
    target = ConnectionSpec(engine="files", name=str(make_files_tree(tmp_path / "site")))
    before = tree_fingerprint(target.name)
    scratch = loading.scratch_spec(target, TAG)
    os.makedirs(scratch.name)
    note = loading.scratch_spec(target, TAG, purpose="swapping").name
    with open(note, "w") as handle:
        handle.write(loading._identity(target.name))
    assert loading.exchange_paths(scratch.name, target.name)
    assert tree_fingerprint(target.name) == {}

    assert loading.put_back(target, loading.kept_spec(target, TAG), tag=TAG) is True

    assert tree_fingerprint(target.name) == before
    assert leftovers(target) == []


def test_a_files_scratch_that_was_never_swapped_is_not_taken_for_the_previous_tree(tmp_path):
    target = ConnectionSpec(engine="files", name=str(make_files_tree(tmp_path / "site")))
    before = tree_fingerprint(target.name)
    scratch = loading.scratch_spec(target, TAG)
    os.makedirs(scratch.name)
    note = loading.scratch_spec(target, TAG, purpose="swapping").name
    with open(note, "w") as handle:
        handle.write(loading._identity(target.name))  # killed before the exchange

    assert loading.put_back(target, loading.kept_spec(target, TAG), tag=TAG) is False

    assert tree_fingerprint(target.name) == before
    assert not os.path.exists(note)
    shutil.rmtree(scratch.name)


@pytest.mark.django_db
@pytest.mark.parametrize("engine", ["postgresql", "files"])
def test_an_existing_kept_copy_is_never_overwritten(engine, request, tmp_path):
    target, scratch = _pair(engine, request, tmp_path)
    before = _state(target)
    kept = loading.kept_spec(target, TAG)
    if engine == "files":
        os.makedirs(kept.name)
    else:
        PostgreSQLEngine().create_database(kept)
    try:
        with pytest.raises(loading.SwapRefused, match="already exists"):
            loading.swap_keeping(target, scratch, tag=TAG)
        assert _state(target) == before
        assert _kept_exists(kept)
    finally:
        loading.discard(kept)
        loading.discard(scratch)


def test_a_rollback_that_fails_says_what_each_member_holds_and_where_its_copy_is():
    members = [
        Member(slot=f"database/{name}", label=name, target=replace(_SPEC, name=name), expected={})
        for name in ("ledger", "shop", "cache")
    ]
    message = _swap_failure(
        members,
        members[1],
        loading.RestoreFailed("disk on fire"),
        ([], ["ledger could not be put back (boom); its previous data is kept as ledger_prev"]),
    )

    assert message == (
        "Swapping in shop failed: disk on fire. shop was left as it was. ledger could not be "
        "put back (boom); its previous data is kept as ledger_prev. Not touched: cache."
    )


_SPEC = ConnectionSpec(engine="postgresql", name="x")


def _run(spec, *statements):
    conn = MySQLEngine("mariadb").connect(spec)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()
