"""End-to-end backups through the real tools, pipeline and destinations, each restored
and compared with the source."""

import os
from pathlib import Path

import pytest

from alerts.models import Alert, AlertKind
from backups.engines import ConnectionSpec, get_engine
from backups.envelope import ArtifactCorrupt
from backups.models import BackupCopy, BackupKind, BackupStatus, CopyStatus
from backups.services import backup_verify
from destinations.backends.local import LocalBackend
from destinations.models import DestinationKind
from tests import factories
from tests.backups.helpers import (
    database_for,
    make_files_tree,
    plaintext_stream,
    restore_database_artifact,
    restore_full_artifact,
    run_backup_now,
    tree_fingerprint,
)
from tests.fixtures.databases import fill_mariadb, fill_postgres, fill_sqlite, table_checksums
from tests.fixtures.s3 import s3_destination_config

pytestmark = pytest.mark.django_db


def _assert_completed(backup):
    assert backup.status == BackupStatus.COMPLETED, backup.message
    assert backup.size and backup.size > 0
    assert len(backup.checksum_sha256) == 64
    assert [p["name"] for p in backup.phases] == ["DUMP", "COMPRESS", "UPLOAD", "VERIFY"]
    assert all(p["status"] == "SUCCESS" for p in backup.phases)
    for copy in backup.copies.all():
        assert copy.status == CopyStatus.STORED
        assert copy.size == backup.size
        assert copy.file_exists


def test_it_backs_up_postgresql_and_the_artifact_restores_identically(
    environment, destination, postgres_spec, make_postgres_database
):
    counts = fill_postgres(postgres_spec, rows=300)
    database = database_for(environment, postgres_spec)

    backup = run_backup_now(environment=environment, kind="database", database=database)

    _assert_completed(backup)
    assert backup.engine == "postgresql"
    assert backup.engine_version.startswith(("15", "16", "17"))
    assert backup.row_counts == {f"public.{t}": n for t, n in counts.items()} or all(
        backup.row_counts[k] == v for k, v in backup.row_counts.items()
    )
    assert sum(backup.row_counts.values()) == sum(counts.values())
    copy = backup.copies.get()
    assert copy.key == (f"quant-gov/dashboard/staging/database/{backup.name}.pgdump.zst.enc")
    target = make_postgres_database()
    restore_database_artifact(backup, target)
    assert table_checksums(target) == table_checksums(postgres_spec)


def test_it_backs_up_mariadb_and_the_artifact_restores_identically(
    environment, destination, mariadb_spec, make_mariadb_database
):
    fill_mariadb(mariadb_spec, rows=300)
    database = database_for(environment, mariadb_spec)

    backup = run_backup_now(environment=environment, kind="database", database=database)

    _assert_completed(backup)
    assert backup.engine_version
    target = make_mariadb_database()
    restore_database_artifact(backup, target)
    assert table_checksums(target) == table_checksums(mariadb_spec)


def test_it_backs_up_sqlite_and_the_artifact_restores_identically(
    environment, destination, sqlite_spec, make_sqlite_database
):
    fill_sqlite(sqlite_spec, rows=300)
    database = database_for(environment, sqlite_spec)

    backup = run_backup_now(environment=environment, kind="database", database=database)

    _assert_completed(backup)
    target = make_sqlite_database()
    restore_database_artifact(backup, target)
    assert table_checksums(target) == table_checksums(sqlite_spec)


def test_a_new_copy_repeats_its_backups_created_at_for_the_destination_list(
    environment, destination, sqlite_spec
):
    fill_sqlite(sqlite_spec, rows=10)
    database = database_for(environment, sqlite_spec)

    backup = run_backup_now(environment=environment, kind="database", database=database)

    _assert_completed(backup)
    assert backup.copies.get().backup_created_at == backup.created_at
    # Copies made outside a backup run (base backups, tests) get it from the model too.
    other = factories.BackupFactory(environment=environment)
    copy, _ = BackupCopy.objects.update_or_create(
        backup=other, destination=destination, defaults={"key": "k"}
    )
    copy.refresh_from_db()
    assert copy.backup_created_at == other.created_at


def test_a_backup_builds_each_destinations_storage_once(
    environment, destination, sqlite_spec, monkeypatch
):
    fill_sqlite(sqlite_spec, rows=10)
    database = database_for(environment, sqlite_spec)
    built = []
    build = LocalBackend.storage
    monkeypatch.setattr(LocalBackend, "storage", lambda self: built.append(self) or build(self))

    backup = run_backup_now(environment=environment, kind="database", database=database)

    _assert_completed(backup)
    # The upload and the check of the stored size share one Storage.
    assert len(built) == 1


def test_it_backs_up_the_files_directory_as_a_byte_identical_tree(
    environment, destination, tmp_path, organisation_dir
):
    source = make_files_tree(organisation_dir / "files")
    environment.files_path = str(source)
    environment.save()

    backup = run_backup_now(environment=environment, kind="filesystem")

    _assert_completed(backup)
    assert backup.method == "archive"
    target = tmp_path / "restored"
    target.mkdir()
    with plaintext_stream(backup) as plain:
        get_engine("files").restore(ConnectionSpec(engine="files", name=str(target)), plain)
    assert tree_fingerprint(target) == tree_fingerprint(source)
    assert os.readlink(target / "latest") == "uploads/2026/a.txt"


def test_a_full_backup_holds_every_database_and_the_files(
    environment,
    destination,
    postgres_spec,
    sqlite_spec,
    make_postgres_database,
    make_sqlite_database,
    organisation_dir,
    tmp_path,
):
    fill_postgres(postgres_spec, rows=50)
    fill_sqlite(sqlite_spec, rows=50)
    pg = database_for(environment, postgres_spec, slug="main-pg")
    lite = database_for(environment, sqlite_spec, slug="cache-lite")
    source_files = make_files_tree(organisation_dir / "files")
    environment.files_path = str(source_files)
    environment.save()

    backup = run_backup_now(environment=environment, kind="full")

    _assert_completed(backup)
    assert backup.kind == BackupKind.FULL
    assert any(k.startswith("main-pg/") for k in backup.row_counts)
    assert any(k.startswith("cache-lite/") for k in backup.row_counts)
    targets = {pg.slug: make_postgres_database(), lite.slug: make_sqlite_database()}
    restored_files = tmp_path / "restored"
    restored_files.mkdir()
    members = restore_full_artifact(backup, targets, restored_files)
    assert members == ["database/cache-lite.sqlite3", "database/main-pg.pgdump", "files.tar"]
    assert table_checksums(targets["main-pg"]) == table_checksums(postgres_spec)
    assert table_checksums(targets["cache-lite"]) == table_checksums(sqlite_spec)
    assert tree_fingerprint(restored_files) == tree_fingerprint(source_files)


@pytest.mark.s3
def test_it_stores_a_copy_in_s3_and_in_local_disk_and_both_restore(
    organisation,
    environment,
    destination,
    postgres_spec,
    make_postgres_database,
    s3_server,
    s3_bucket,
):
    fill_postgres(postgres_spec, rows=100)
    config, secrets = s3_destination_config(s3_server, s3_bucket)
    s3 = factories.DestinationFactory(
        organisation=organisation,
        name="S3",
        kind=DestinationKind.S3,
        config=config,
        secrets=secrets,
    )
    database = database_for(environment, postgres_spec)

    backup = run_backup_now(
        environment=environment,
        kind="database",
        database=database,
        destination_ids=[str(destination.id), str(s3.id)],
    )

    _assert_completed(backup)
    assert backup.copies.count() == 2
    listed = s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [o["Key"] for o in listed] == [f"backups/{backup.copies.get(destination=s3).key}"]
    assert listed[0]["Size"] == backup.size
    for copy in backup.copies.all():
        target = make_postgres_database()
        restore_database_artifact(backup, target, copy=copy)
        assert table_checksums(target) == table_checksums(postgres_spec)
    assert backup_verify(backup=backup) is True


def test_an_encrypted_artifact_that_was_tampered_with_is_detected(
    environment, destination, sqlite_spec
):
    fill_sqlite(sqlite_spec, rows=50)
    backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, sqlite_spec)
    )
    assert backup.encrypted and backup.key_id.startswith("hkdf:")
    copy = backup.copies.get()
    path = Path(destination.config.get("path") or "") if destination.config.get("path") else None
    from destinations.backends import backend_for

    path = Path(backend_for(destination).storage().path(copy.key))
    data = bytearray(path.read_bytes())
    assert data[:5] == b"SBXE1"
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    assert backup_verify(backup=backup) is False
    assert Alert.objects.filter(kind=AlertKind.VERIFICATION_FAILED, backup=backup).exists()
    with pytest.raises(ArtifactCorrupt), plaintext_stream(backup) as plain:
        plain.read()


def _artifact_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_bad_credentials_fail_the_backup_with_the_tools_message_and_leave_nothing(
    settings, environment, destination, postgres_spec
):
    database = database_for(environment, postgres_spec, username="nobody_here", password="wrong")

    backup = run_backup_now(environment=environment, kind="database", database=database)

    assert backup.status == BackupStatus.FAILED
    assert "nobody_here" in backup.message or "authentication" in backup.message.lower()
    assert _artifact_files(Path(settings.STRONGBOX_LOCAL_DESTINATION_ROOT)) == []
    assert Alert.objects.filter(kind=AlertKind.BACKUP_FAILED, backup=backup).exists()


def test_a_database_that_is_gone_fails_the_backup_and_leaves_nothing(
    settings, environment, destination, postgres_spec
):
    database = database_for(environment, postgres_spec)
    get_engine("postgresql").drop_database(postgres_spec)

    backup = run_backup_now(environment=environment, kind="database", database=database)

    assert backup.status == BackupStatus.FAILED
    assert postgres_spec.name in backup.message
    assert _artifact_files(Path(settings.STRONGBOX_LOCAL_DESTINATION_ROOT)) == []


def test_an_unreachable_destination_fails_the_backup_but_keeps_the_good_copy(
    organisation, environment, destination, sqlite_spec
):
    fill_sqlite(sqlite_spec, rows=20)
    dead = factories.DestinationFactory(
        organisation=organisation,
        name="Dead S3",
        kind=DestinationKind.S3,
        config={"bucket": "nowhere", "endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"},
        secrets={"access_key_id": "x", "secret_access_key": "y"},
    )
    database = database_for(environment, sqlite_spec)

    backup = run_backup_now(
        environment=environment,
        kind="database",
        database=database,
        destination_ids=[str(destination.id), str(dead.id)],
    )

    assert backup.status == BackupStatus.FAILED
    assert "Dead S3" in backup.message
    assert "Stored completely in: Local disk" in backup.message
    assert backup.copies.get(destination=destination).status == CopyStatus.STORED
    assert backup.copies.get(destination=dead).status == CopyStatus.FAILED


def test_mongodb_without_its_tools_ends_not_supported_with_a_message(environment, destination):
    database = factories.DatabaseFactory(
        environment=environment, engine="mongodb", host="127.0.0.1", database_name="app"
    )

    backup = run_backup_now(environment=environment, kind="database", database=database)

    assert backup.status == BackupStatus.NOT_SUPPORTED
    assert "mongodump" in backup.message


def test_a_files_backup_records_how_many_files_it_holds(environment, destination, organisation_dir):
    source = make_files_tree(organisation_dir / "files")
    environment.files_path = str(source)
    environment.save()

    backup = run_backup_now(environment=environment, kind="filesystem")

    assert backup.row_counts["files"] == 3
    assert backup.row_counts["symlinks"] == 1
