"""archive_wal / fetch_wal through the real pipeline and destinations (local disk and an
S3-protocol server), without a PostgreSQL cluster: WAL files here are plain files."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from alerts.models import Alert, AlertKind
from backups.models import WalArchiver, WalSegment
from pitr.archive import WalArchiveFailed, WalConflict, wal_archive, wal_fetch
from tests import factories
from tests.fixtures.s3 import MotoServer, free_port, s3_destination_config
from tests.fixtures.tenants import DEFAULT_SLUG, tenant_path

NAME = "000000010000000000000007"


@pytest.fixture
def local_destination(environment, tmp_path):
    return factories.DestinationFactory(
        organisation=environment.project.organisation,
        name="A local disk",
        config={"path": str(tenant_path(DEFAULT_SLUG, "local"))},
        is_default=True,
    )


@pytest.fixture
def pg_database(environment):
    return factories.DatabaseFactory(
        environment=environment, name="Orders", slug="orders", engine="postgresql"
    )


@pytest.fixture
def wal_file(tmp_path):
    path = tmp_path / "pg_wal" / NAME
    path.parent.mkdir()
    path.write_bytes(b"WAL" * 50_000 + bytes(range(256)))
    return path


def test_a_wal_file_is_stored_compressed_encrypted_and_fetched_back_identical(
    pg_database, local_destination, wal_file, tmp_path
):
    result = wal_archive(database=pg_database, path=wal_file, name=NAME)
    segment = result.segment
    assert not result.already_archived
    assert segment.key == f"quant-gov/dashboard/staging/wal/orders/{NAME}.zst.enc"
    assert segment.encrypted and segment.compression == "zstd"
    assert segment.stored_size < segment.size
    assert list(segment.destinations.all()) == [local_destination]
    stored = tenant_path(DEFAULT_SLUG, "local") / segment.key
    assert b"WAL" not in stored.read_bytes()

    target = tmp_path / "restore" / NAME
    target.parent.mkdir()
    assert wal_fetch(database=pg_database, name=NAME, target=target)
    assert target.read_bytes() == wal_file.read_bytes()
    assert WalArchiver.objects.get(database=pg_database).last_archived_wal == NAME


def test_archiving_the_same_file_twice_is_harmless_and_a_different_one_is_refused(
    pg_database, local_destination, wal_file
):
    wal_archive(database=pg_database, path=wal_file, name=NAME)
    assert wal_archive(database=pg_database, path=wal_file, name=NAME).already_archived
    wal_file.write_bytes(b"another cluster's WAL")
    with pytest.raises(WalConflict, match="refusing to overwrite"):
        wal_archive(database=pg_database, path=wal_file, name=NAME)
    assert WalSegment.objects.filter(database=pg_database).count() == 1
    archiver = WalArchiver.objects.get(database=pg_database)
    assert archiver.consecutive_failures == 1 and archiver.last_failed_wal == NAME
    alert = Alert.objects.get(kind=AlertKind.WAL_ARCHIVING_FAILED, resolved_at__isnull=True)
    assert alert.severity == "critical"


def test_repeated_failures_make_one_alert_that_success_resolves(
    pg_database, local_destination, wal_file, tmp_path
):
    (tenant_path(DEFAULT_SLUG, "local")).write_text("a file where the directory should be")
    for _ in range(3):
        with pytest.raises(WalArchiveFailed):
            wal_archive(database=pg_database, path=wal_file, name=NAME)
    alert = Alert.objects.get(kind=AlertKind.WAL_ARCHIVING_FAILED)
    assert alert.occurrences == 3
    (tenant_path(DEFAULT_SLUG, "local")).unlink()
    wal_archive(database=pg_database, path=wal_file, name=NAME)
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_a_file_that_is_not_wal_is_refused(pg_database, local_destination, wal_file):
    with pytest.raises(WalArchiveFailed, match="not a WAL file name"):
        wal_archive(database=pg_database, path=wal_file, name="../../escape")


def test_fetch_wal_exits_1_when_absent_and_2_when_no_copy_is_intact(
    pg_database, local_destination, wal_file, tmp_path
):
    target = tmp_path / "out"
    with pytest.raises(SystemExit) as absent:
        call_command("fetch_wal", "--database", str(pg_database.id), NAME, str(target))
    assert absent.value.code == 1

    segment = wal_archive(database=pg_database, path=wal_file, name=NAME).segment
    call_command("fetch_wal", "--database", str(pg_database.id), NAME, str(target))
    assert target.read_bytes() == wal_file.read_bytes()

    stored = tenant_path(DEFAULT_SLUG, "local") / segment.key
    data = bytearray(stored.read_bytes())
    data[-10] ^= 0xFF
    stored.write_bytes(bytes(data))
    target.unlink()
    with pytest.raises(SystemExit) as corrupt:
        call_command("fetch_wal", "--database", str(pg_database.id), NAME, str(target))
    assert corrupt.value.code == 2
    assert not target.exists()


@pytest.mark.s3
def test_a_file_stored_in_only_some_destinations_is_completed_on_retry(
    pg_database, local_destination, wal_file, tmp_path, environment, monkeypatch
):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # A server of our own: this test stops it, and moto keeps its state in memory.
    server = MotoServer(free_port())
    server.start()
    try:
        server.client().create_bucket(Bucket="wal")
        config, secrets = s3_destination_config(server, "wal", prefix="strongbox")
        s3 = factories.DestinationFactory(
            organisation=environment.project.organisation,
            name="B bucket",
            kind="s3",
            config=config,
            secrets=secrets,
            is_default=True,
        )
        server.stop()
        with pytest.raises(WalArchiveFailed) as failed:
            wal_archive(database=pg_database, path=wal_file, name=NAME)
        assert "B bucket" in str(failed.value)
        assert not WalSegment.objects.filter(database=pg_database).exists()
        # The local copy landed; the retry must accept it rather than refuse to overwrite.
        assert any((tenant_path(DEFAULT_SLUG, "local")).rglob(f"{NAME}.zst.enc"))

        server.start()
        server.client().create_bucket(Bucket="wal")
        segment = wal_archive(database=pg_database, path=wal_file, name=NAME).segment
        assert set(segment.destinations.all()) == {local_destination, s3}
        listed = server.client().list_objects_v2(Bucket="wal")["Contents"]
        assert [o["Key"] for o in listed] == [f"strongbox/{segment.key}"]

        (tenant_path(DEFAULT_SLUG, "local") / segment.key).unlink()
        target = tmp_path / "fetched"
        assert wal_fetch(database=pg_database, name=NAME, target=target)
        assert target.read_bytes() == wal_file.read_bytes()
    finally:
        server.stop()


def test_the_wal_of_a_deleted_database_is_purged_from_its_destinations(
    pg_database, local_destination, wal_file, tmp_path
):
    from organizations.services import database_delete
    from pitr.tasks import run_pitr_housekeeping

    segment = wal_archive(database=pg_database, path=wal_file, name=NAME).segment
    stored = tenant_path(DEFAULT_SLUG, "local") / segment.key
    assert stored.is_file()

    database_delete(database=pg_database)

    segment.refresh_from_db()
    assert segment.database is None  # left for housekeeping, not cascaded away with its file
    run_pitr_housekeeping()
    assert not stored.exists()
    assert not WalSegment.objects.filter(pk=segment.pk).exists()


def test_a_file_too_large_to_compress_whole_streams_and_fetches_back_identical(
    pg_database, local_destination, wal_file, tmp_path, monkeypatch
):
    # A cluster with 1 GiB segments: the file streams through the pipeline in chunks.
    monkeypatch.setattr("pitr.archive.COMPRESS_WHOLE_LIMIT", 1000)
    streamed = wal_archive(database=pg_database, path=wal_file, name=NAME).segment
    target = tmp_path / "restore" / NAME
    target.parent.mkdir()
    assert wal_fetch(database=pg_database, name=NAME, target=target)
    assert target.read_bytes() == wal_file.read_bytes()
    assert streamed.compression == "zstd" and streamed.stored_size < streamed.size
