"""Restores through the real tools and servers, compared with the source by content."""

import pytest

from backups.models import BackupStatus, BackupTrigger
from restores.models import RestoreStatus
from restores.services import restore_undo
from tests import factories
from tests.backups.helpers import database_for, make_files_tree, run_backup_now, tree_fingerprint
from tests.fixtures.databases import (
    MySQLEngine,
    PostgreSQLEngine,
    fill_mariadb,
    fill_postgres,
    fill_sqlite,
    table_checksums,
)
from tests.restores.helpers import leftovers, run_restore_now

pytestmark = pytest.mark.django_db

PHASES = ["VERIFY", "SAFETY_BACKUP", "RESTORE", "CHECK", "SWAP"]


def _assert_completed(restore):
    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert [p["name"] for p in restore.phases] == PHASES
    assert all(p["status"] in ("SUCCESS", "SKIPPED") for p in restore.phases), restore.phases
    assert restore.completed_at and restore.started_at
    assert restore.bytes_done > 0


def _scribble(spec):
    """Change the live database after the backup, so a restore has something to undo."""
    if spec.engine == "postgresql":
        with PostgreSQLEngine().connect(spec) as conn:
            conn.execute("DELETE FROM customers WHERE id % 2 = 0")
            conn.execute("UPDATE measurements SET big = 0")
            conn.execute("CREATE TABLE extra (id integer)")
    elif spec.engine == "mariadb":
        conn = MySQLEngine("mariadb").connect(spec)
        with conn.cursor() as cur:
            cur.execute("DELETE FROM customers WHERE id % 2 = 0")
            cur.execute("UPDATE measurements SET big = 0")
            cur.execute("CREATE TABLE extra (id integer)")
        conn.close()
    else:
        import sqlite3

        with sqlite3.connect(spec.name) as conn:
            conn.execute("DELETE FROM customers WHERE id % 2 = 0")
            conn.execute("UPDATE measurements SET big = 0")
        conn.close()


@pytest.mark.parametrize("engine", ["postgresql", "mariadb", "sqlite"])
def test_it_restores_a_database_into_the_same_environment_and_undo_brings_the_change_back(
    engine, environment, destination, request
):
    make, fill = {
        "postgresql": ("make_postgres_database", fill_postgres),
        "mariadb": ("make_mariadb_database", fill_mariadb),
        "sqlite": ("make_sqlite_database", fill_sqlite),
    }[engine]
    spec = request.getfixturevalue(make)()
    fill(spec, rows=300)
    original = table_checksums(spec)
    database = database_for(environment, spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    _scribble(spec)
    changed = table_checksums(spec)
    assert changed != original

    restore = run_restore_now(backup=backup, target_type="same")

    _assert_completed(restore)
    assert table_checksums(spec) == original
    assert restore.target_database == database
    assert restore.target_type == "same"
    safety = restore.safety_backup
    assert safety is not None and safety.status == BackupStatus.COMPLETED
    assert safety.trigger == BackupTrigger.SAFETY and safety.database == database
    assert leftovers(spec) == []

    undo = restore_undo(restore=restore)
    assert undo.undoes == restore and undo.backup == safety
    from restores.services import restore_claim, restore_execute

    undone = restore_execute(restore=restore_claim(restore_id=undo.id))
    _assert_completed(undone)
    assert table_checksums(spec) == changed
    assert leftovers(spec) == []


@pytest.mark.parametrize("engine", ["postgresql", "mariadb", "sqlite"])
def test_it_restores_a_database_into_another_environment_of_the_organisation(
    engine, project, environment, destination, request
):
    make, fill = {
        "postgresql": ("make_postgres_database", fill_postgres),
        "mariadb": ("make_mariadb_database", fill_mariadb),
        "sqlite": ("make_sqlite_database", fill_sqlite),
    }[engine]
    source = request.getfixturevalue(make)()
    fill(source, rows=200)
    backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, source)
    )
    production = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    target = request.getfixturevalue(make)()  # empty: nothing to keep, no safety backup
    target_db = database_for(production, target)

    restore = run_restore_now(
        backup=backup, target_type="other", target_environment=str(production.id)
    )

    _assert_completed(restore)
    assert restore.target_type == "other"
    assert restore.source_environment == environment
    assert restore.target_environment == production
    assert restore.target_database == target_db
    assert restore.safety_backup is None
    assert restore.phases[1]["status"] == "SKIPPED"
    assert table_checksums(target) == table_checksums(source)
    assert leftovers(target) == []


def test_it_restores_files_by_swapping_the_directory(
    project, environment, destination, tmp_path, organisation_dir
):
    source = make_files_tree(organisation_dir / "files")
    environment.files_path = str(source)
    environment.save()
    original = tree_fingerprint(source)
    backup = run_backup_now(environment=environment, kind="filesystem")
    (source / "uploads" / "photo.bin").unlink()
    (source / "new.txt").write_text("written after the backup")

    restore = run_restore_now(backup=backup, target_type="same")

    _assert_completed(restore)
    assert tree_fingerprint(source) == original
    assert restore.safety_backup.kind == "filesystem"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifacts", "tmp"]
    assert sorted(p.name for p in organisation_dir.iterdir()) == ["files"]

    other_dir = organisation_dir / "other"
    other_dir.mkdir()
    other = factories.EnvironmentFactory(project=project, files_path=str(other_dir))
    restore = run_restore_now(backup=backup, target_type="other", target_environment=other)
    _assert_completed(restore)
    assert tree_fingerprint(other_dir) == original


def test_it_restores_a_full_backup_into_the_same_and_another_environment(
    project,
    environment,
    destination,
    organisation_dir,
    make_postgres_database,
    make_sqlite_database,
):
    pg, lite = make_postgres_database(), make_sqlite_database()
    fill_postgres(pg, rows=100)
    fill_sqlite(lite, rows=100)
    database_for(environment, pg, slug="main")
    database_for(environment, lite, slug="cache")
    files = make_files_tree(organisation_dir / "files")
    environment.files_path = str(files)
    environment.save()
    expected = (table_checksums(pg), table_checksums(lite), tree_fingerprint(files))
    backup = run_backup_now(environment=environment, kind="full")
    _scribble(pg)
    _scribble(lite)
    (files / "empty.txt").unlink()

    restore = run_restore_now(backup=backup, target_type="same")

    _assert_completed(restore)
    assert (table_checksums(pg), table_checksums(lite), tree_fingerprint(files)) == expected
    assert restore.safety_backup.kind == "full"
    assert leftovers(pg) == [] and leftovers(lite) == []

    other_files = organisation_dir / "other-files"
    other = factories.EnvironmentFactory(project=project, files_path=str(other_files))
    other_pg, other_lite = make_postgres_database(), make_sqlite_database()
    database_for(other, other_pg, slug="main")
    database_for(other, other_lite, slug="cache")
    restore = run_restore_now(backup=backup, target_type="other", target_environment=other)
    _assert_completed(restore)
    restored = (
        table_checksums(other_pg),
        table_checksums(other_lite),
        tree_fingerprint(other_files),
    )
    assert restored == expected


@pytest.mark.s3
def test_it_restores_from_an_s3_copy_downloaded_once_and_verified(
    organisation, environment, sqlite_spec, s3_server, s3_bucket, tmp_path
):
    from destinations.models import DestinationKind
    from tests.fixtures.s3 import s3_destination_config

    config, secrets = s3_destination_config(s3_server, s3_bucket)
    s3 = factories.DestinationFactory(
        organisation=organisation, kind=DestinationKind.S3, config=config, secrets=secrets
    )
    fill_sqlite(sqlite_spec, rows=150)
    original = table_checksums(sqlite_spec)
    database = database_for(environment, sqlite_spec)
    backup = run_backup_now(
        environment=environment, kind="database", database=database, destination_ids=[s3.id]
    )
    _scribble(sqlite_spec)

    restore = run_restore_now(backup=backup, target_type="same", take_safety_backup=False)

    _assert_completed(restore)
    assert restore.phases[0]["copy"] == s3.name
    assert table_checksums(sqlite_spec) == original
    assert list((tmp_path / "tmp").glob("strongbox-fetch-*")) == []
