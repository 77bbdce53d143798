"""Backup keys: key ids that name their master key, rotation end to end, old artifacts."""

import base64
import hashlib
import io
import os
import sqlite3

import pytest
import zstandard
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.core.management import call_command

from backups.envelope import ArtifactCorrupt, EnvelopeReader, EnvelopeWriter
from backups.keys import KeyUnavailable, key_for_id, keys_needed, organisation_key
from backups.models import Backup, BackupStatus
from backups.pipeline import open_artifact
from backups.services import backup_request
from config.keyring import key_fingerprint, parse_master_keys
from destinations.models import DestinationKind
from organizations.models import Database
from restores.models import Restore, RestoreStatus
from restores.services import restore_request
from tests import factories
from tests.backups.helpers import database_for, plaintext_stream, run_backup_now
from tests.fixtures.databases import PostgreSQLEngine, fill_postgres, fill_sqlite, table_checksums
from tests.fixtures.s3 import s3_destination_config
from tests.fixtures.worker import wait_for
from tests.restores.helpers import artifact_path, run_restore_now

pytestmark = pytest.mark.django_db

K1 = "first-master-key-7f3a9c"
K2 = "second-master-key-b81d2e"


def fingerprint(secret: str) -> str:
    return key_fingerprint(secret.encode())


def old_backup_key(master: str, organisation_id: str) -> bytes:
    """The per-organisation key exactly as the first version derived it."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"strongbox-backup-key-v1",
        info=organisation_id.encode(),
    ).derive(master.encode())


def sealed(plaintext: bytes, key: bytes, key_id: str) -> bytes:
    writer = EnvelopeWriter(key, key_id, chunk_size=1024)
    chunks = [plaintext[i : i + 1024] for i in range(0, len(plaintext), 1024)] or [b""]
    body = b"".join(
        writer.seal(chunk, final=i == len(chunks) - 1) for i, chunk in enumerate(chunks)
    )
    return writer.header + body


def read_all(artifact: bytes) -> bytes:
    with open_artifact(io.BytesIO(artifact), key_for=key_for_id) as stream:
        return stream.read()


# --- key ids ----------------------------------------------------------------------------------


def test_master_keys_are_read_newest_first_from_commas_or_lines():
    keys = parse_master_keys(f" {K2} ,\n{K1}\n,{K2}")
    assert [key.secret for key in keys] == [K2, K1]
    assert [key.fingerprint for key in keys] == [fingerprint(K2), fingerprint(K1)]
    assert K2 not in repr(keys)


def test_each_organisation_encrypts_under_its_own_key_id_naming_the_newest_master_key(
    settings, organisation, other_organisation
):
    settings.STRONGBOX_MASTER_KEY = f"{K2},{K1}"
    ours, theirs = organisation_key(organisation), organisation_key(other_organisation)

    assert ours[0] == f"hkdf:{fingerprint(K2)}:{organisation.id}"
    assert theirs[0] == f"hkdf:{fingerprint(K2)}:{other_organisation.id}"
    assert ours[1] != theirs[1]
    assert key_for_id(ours[0]) == ours[1]
    assert key_for_id(f"hkdf:{fingerprint(K1)}:{organisation.id}") == old_backup_key(
        K1, str(organisation.id)
    )


def test_an_artifact_whose_master_key_was_removed_names_the_missing_key_id(settings, organisation):
    settings.STRONGBOX_MASTER_KEY = K1
    key_id, key = organisation_key(organisation)
    artifact = sealed(b"rows", key, key_id)
    settings.STRONGBOX_MASTER_KEY = K2

    with pytest.raises(KeyUnavailable) as failure:
        read_all(artifact)

    assert key_id in failure.value.message
    assert fingerprint(K1) in failure.value.message
    assert f"configured: {fingerprint(K2)}" in failure.value.message


def test_an_artifact_with_the_old_key_id_format_still_decrypts_after_a_rotation(
    settings, organisation
):
    # Written by the first version: key id "hkdf:<organisation id>", key from the one master key.
    old_id = f"hkdf:{organisation.id}"
    data = os.urandom(5000)
    artifact = sealed(data, old_backup_key(K1, str(organisation.id)), old_id)
    settings.STRONGBOX_MASTER_KEY = f"{K2},{K1}"

    assert read_all(artifact) == data
    settings.STRONGBOX_MASTER_KEY = K2
    with pytest.raises(ArtifactCorrupt):
        read_all(artifact)


def test_another_organisations_key_cannot_open_an_artifact(
    settings, organisation, other_organisation
):
    settings.STRONGBOX_MASTER_KEY = K1
    key_id, key = organisation_key(organisation)
    theirs = organisation_key(other_organisation)[0]
    artifact = sealed(b"secret rows", key, key_id)
    forged = artifact.replace(key_id.encode(), theirs.encode())

    with pytest.raises(ArtifactCorrupt):
        read_all(forged)


def test_key_file_keys_rotate_newest_line_first_and_old_ids_still_read(
    settings, organisation, tmp_path
):
    old, new = os.urandom(32), os.urandom(32)
    key_file = tmp_path / "keys"
    key_file.write_text(f"quant-gov={base64.b64encode(old).decode()}\n")
    settings.STRONGBOX_KEY_FILE = str(key_file)
    first_id, first_key = organisation_key(organisation)
    before = sealed(b"before", first_key, first_id)
    legacy = sealed(b"legacy", old, "file:quant-gov")  # the first version's id format

    key_file.write_text(
        f"quant-gov={base64.b64encode(new).decode()}\nquant-gov={base64.b64encode(old).decode()}\n"
    )
    second_id, second_key = organisation_key(organisation)

    assert first_id == f"file:quant-gov:{key_fingerprint(old)}"
    assert second_id == f"file:quant-gov:{key_fingerprint(new)}" and second_key == new
    assert read_all(before) == b"before"
    assert read_all(legacy) == b"legacy"


# --- rotation end to end ----------------------------------------------------------------------


def _change(spec):
    """Change the live database between two backups, so the two hold different data."""
    if spec.engine == "postgresql":
        with PostgreSQLEngine().connect(spec) as conn:
            conn.execute("DELETE FROM customers WHERE id % 3 = 0")
    else:
        with sqlite3.connect(spec.name) as conn:
            conn.execute("DELETE FROM customers WHERE id % 3 = 0")
        conn.close()


@pytest.fixture
def s3_destination(settings, organisation, s3_server, s3_bucket):
    settings.STRONGBOX_MASTER_KEY = K1  # its secrets are stored under K1
    config, secrets = s3_destination_config(s3_server, s3_bucket)
    return factories.DestinationFactory(
        organisation=organisation,
        name="S3",
        kind=DestinationKind.S3,
        config=config,
        secrets=secrets,
        is_default=False,
    )


@pytest.mark.parametrize("engine", ["postgresql", "sqlite"])
def test_backups_from_before_and_after_a_rotation_both_restore_until_the_old_key_is_removed(
    engine, settings, organisation, environment, s3_destination, request, capsys
):
    settings.STRONGBOX_MASTER_KEY = K1
    if engine == "postgresql":
        spec = request.getfixturevalue("make_postgres_database")()
        fill_postgres(spec, rows=300)
    else:
        spec = request.getfixturevalue("make_sqlite_database")()
        fill_sqlite(spec, rows=300)
    database = database_for(environment, spec, password="db-pass-1")
    destinations = [str(s3_destination.id)]
    before_rotation = run_backup_now(
        environment=environment, kind="database", database=database, destination_ids=destinations
    )
    assert before_rotation.status == BackupStatus.COMPLETED, before_rotation.message
    data_before = table_checksums(spec)
    _change(spec)
    data_after = table_checksums(spec)

    settings.STRONGBOX_MASTER_KEY = f"{K2},{K1}"
    call_command("rotate_keys")
    output = capsys.readouterr().out
    assert "organizations.Database.password: 0 current, 1 re-encrypted" in output
    assert "destinations.Destination.secrets: 0 current, 1 re-encrypted" in output
    after_rotation = run_backup_now(
        environment=environment, kind="database", database=database, destination_ids=destinations
    )
    assert after_rotation.status == BackupStatus.COMPLETED, after_rotation.message

    assert before_rotation.key_id == f"hkdf:{fingerprint(K1)}:{organisation.id}"
    assert after_rotation.key_id == f"hkdf:{fingerprint(K2)}:{organisation.id}"
    restored_old = run_restore_now(backup=before_rotation, target_type="same")
    assert restored_old.status == RestoreStatus.COMPLETED, restored_old.message
    assert table_checksums(spec) == data_before
    restored_new = run_restore_now(backup=after_rotation, target_type="same")
    assert restored_new.status == RestoreStatus.COMPLETED, restored_new.message
    assert table_checksums(spec) == data_after

    settings.STRONGBOX_MASTER_KEY = K2
    # Stored secrets were re-encrypted: only K2 reads them now.
    assert Database.objects.get(pk=database.pk).password == "db-pass-1"
    s3_destination.refresh_from_db()
    assert set(s3_destination.secrets) == {"access_key_id", "secret_access_key"}
    refused = run_restore_now(backup=before_rotation, target_type="same")
    assert refused.status == RestoreStatus.FAILED
    assert before_rotation.key_id in refused.message
    assert "not in STRONGBOX_MASTER_KEY" in refused.message
    assert table_checksums(spec) == data_after
    _change(spec)
    restored_again = run_restore_now(backup=after_rotation, target_type="same")
    assert restored_again.status == RestoreStatus.COMPLETED, restored_again.message
    assert table_checksums(spec) == data_after


def test_rotate_keys_check_lists_which_keys_kept_backups_still_need(
    settings, environment, destination, make_sqlite_database, capsys
):
    settings.STRONGBOX_MASTER_KEY = K1
    spec = make_sqlite_database()
    fill_sqlite(spec, rows=20)
    database = database_for(environment, spec)
    for _ in range(2):
        run_backup_now(environment=environment, kind="database", database=database)
    settings.STRONGBOX_MASTER_KEY = f"{K2},{K1}"
    run_backup_now(environment=environment, kind="database", database=database)

    call_command("rotate_keys", "--check")  # nothing to re-encrypt: the SQLite row has none
    output = capsys.readouterr().out
    assert f"{fingerprint(K2)}: 1 backup(s), 0 WAL segment(s) - newest key" in output
    assert f"{fingerprint(K1)}: 2 backup(s), 0 WAL segment(s) - older key" in output

    settings.STRONGBOX_MASTER_KEY = K2
    assert [(need.key, need.state) for need in keys_needed()] == [
        (fingerprint(K2), "newest"),
        (fingerprint(K1), "missing"),
    ]
    with pytest.raises(Exception, match="needs attention"):
        call_command("rotate_keys", "--check")


def test_a_restore_reads_a_backup_stored_under_the_old_key_id_format(
    settings, organisation, environment, destination, make_sqlite_database
):
    """Artifacts written before key ids named their master key restore after an upgrade
    and a rotation: the first chunk tells which configured master key it was."""
    settings.STRONGBOX_MASTER_KEY = K1
    spec = make_sqlite_database()
    fill_sqlite(spec, rows=50)
    expected = table_checksums(spec)
    backup = run_backup_now(
        environment=environment,
        kind="database",
        database=database_for(environment, spec),
    )
    with plaintext_stream(backup) as plain:
        dump = plain.read()
    # Store it again as the first version wrote it: the old key id, the key derived from it.
    old_id = f"hkdf:{organisation.id}"
    compressed = zstandard.ZstdCompressor().compress(dump)
    artifact = sealed(compressed, old_backup_key(K1, str(organisation.id)), old_id)
    copy = backup.copies.get()
    artifact_path(backup).write_bytes(artifact)
    backup.key_id = old_id
    backup.size = copy.size = len(artifact)
    backup.checksum_sha256 = copy.checksum_sha256 = hashlib.sha256(artifact).hexdigest()
    backup.save()
    copy.save()
    _change(spec)
    settings.STRONGBOX_MASTER_KEY = f"{K2},{K1}"

    restore = run_restore_now(backup=backup, target_type="same")

    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert table_checksums(spec) == expected
    assert ("hkdf:<organisation>", "unnamed") in [(need.key, need.state) for need in keys_needed()]


def test_each_organisations_backups_record_and_use_their_own_key_id(
    settings, environment, destination, other_organisation, make_sqlite_database
):
    settings.STRONGBOX_MASTER_KEY = f"{K2},{K1}"
    other_environment = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation)
    )
    factories.DestinationFactory(organisation=other_organisation, name="Their disk")
    backups = []
    for env in (environment, other_environment):
        spec = make_sqlite_database(env.project.organisation)
        fill_sqlite(spec, rows=30)
        backups.append(
            run_backup_now(environment=env, kind="database", database=database_for(env, spec))
        )

    for backup in backups:
        assert backup.status == BackupStatus.COMPLETED, backup.message
        assert backup.key_id == f"hkdf:{fingerprint(K2)}:{backup.organisation.id}"
        with artifact_path(backup).open("rb") as raw:
            assert EnvelopeReader(raw, key_for_id).key_id == backup.key_id
    assert backups[0].key_id != backups[1].key_id


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_real_workers_restore_across_a_rotation_and_name_the_key_once_it_is_removed(
    settings, organisation, environment, destination, postgres_spec, start_worker
):
    """Each worker process has only the keys in its environment, as in a deployment."""
    settings.STRONGBOX_MASTER_KEY = K1
    fill_postgres(postgres_spec, rows=200)
    database = database_for(environment, postgres_spec, password="worker-pw")

    def backed_up(worker) -> Backup:
        (backup,) = backup_request(environment=environment, kind="database", database=database)
        wait_for(
            lambda: Backup.objects.get(pk=backup.pk).is_final,
            timeout=90,
            message=f"the backup to finish; worker log:\n{worker.output()}",
        )
        backup.refresh_from_db()
        assert backup.status == BackupStatus.COMPLETED, backup.message
        return backup

    def restored(backup, worker) -> Restore:
        restore = restore_request(backup=backup, target_type="same")
        wait_for(
            lambda: (
                Restore.objects.get(pk=restore.pk).status
                in (RestoreStatus.COMPLETED, RestoreStatus.FAILED)
            ),
            timeout=120,
            message=f"the restore to finish; worker log:\n{worker.output()}",
        )
        return Restore.objects.get(pk=restore.pk)

    worker = start_worker(STRONGBOX_MASTER_KEY=K1)
    before_rotation = backed_up(worker)
    worker.stop()
    data_before = table_checksums(postgres_spec)
    _change(postgres_spec)
    data_after = table_checksums(postgres_spec)

    settings.STRONGBOX_MASTER_KEY = f"{K2},{K1}"
    call_command("rotate_keys")
    worker = start_worker(STRONGBOX_MASTER_KEY=f"{K2},{K1}")
    after_rotation = backed_up(worker)
    worker.stop()

    settings.STRONGBOX_MASTER_KEY = K2
    worker = start_worker(STRONGBOX_MASTER_KEY=K2)
    refused = restored(before_rotation, worker)
    assert refused.status == RestoreStatus.FAILED
    assert before_rotation.key_id in refused.message and fingerprint(K1) in refused.message
    assert table_checksums(postgres_spec) == data_after
    _change(postgres_spec)  # so that the next restore has something to put back
    restore = restored(after_rotation, worker)
    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert table_checksums(postgres_spec) == data_after
    worker.stop()

    worker = start_worker(STRONGBOX_MASTER_KEY=f"{K2},{K1}")
    restore = restored(before_rotation, worker)
    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert table_checksums(postgres_spec) == data_before
