"""age public-key encryption: artifacts the stock age tool and pyrage read (and theirs read
here), real backups restored and compared, re-wrapping, a worker without an identity, and
organisations that never open each other's backups."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path

import pyrage
import pytest
import zstandard
from django.core.management import call_command
from django.utils import timezone

from backups import age_format
from backups.age_format import AgeError, AgeReader, AgeWriter, generate_identity, identity_text
from backups.checks import check_age_settings
from backups.keys import artifact_keys, keys_needed
from backups.models import AgeKeys, Backup, BackupCopy, BackupStatus, Encryption
from backups.pipeline import ArtifactCorrupt, PipelineOptions, open_artifact, run_pipeline
from backups.rewrap import CannotRewrap, age_backup_rewrap
from backups.services import age_keys_update, backup_verify
from destinations.backends import backend_for
from destinations.models import DestinationKind
from destinations.storage import delete_artifact, open_artifact_stream
from organizations.models import Role
from restores.models import RestoreStatus
from restores.services import backup_test_restore
from tests import factories
from tests.backups.helpers import database_for, plaintext_stream, run_backup_now
from tests.fixtures.databases import PostgreSQLEngine, fill_postgres, fill_sqlite, table_checksums
from tests.fixtures.s3 import s3_destination_config
from tests.restores.helpers import artifact_path, leftovers, run_restore_now

pytestmark = pytest.mark.django_db

MASTER_KEY = "master-key-for-an-aes-backup"
AGE = shutil.which("age")
needs_age = pytest.mark.skipif(
    AGE is None and os.environ.get("CI") != "true", reason="the age tool is not installed"
)


class MemorySink:
    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.buffer = bytearray()

    def write(self, chunk: bytes) -> None:
        self.buffer += chunk

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        self.buffer.clear()


def age_artifact(plaintext: bytes, recipients: list[str], chunk: int = 1 << 20) -> bytes:
    writer = AgeWriter(recipients, chunk)
    out = bytearray(writer.header)
    view = memoryview(plaintext)
    while len(view) > chunk:
        out += writer.seal(bytes(view[:chunk]), final=False)
        view = view[chunk:]
    out += writer.seal(bytes(view), final=True)
    return bytes(out)


def key_file(tmp_path: Path, identity, name: str = "key.txt") -> Path:
    path = tmp_path / name
    path.write_text(identity_text(identity))
    path.chmod(0o600)
    return path


def stock_age_decrypt(artifact: Path, key: Path) -> bytes:
    result = subprocess.run(  # noqa: S603 - fixed argv
        [AGE or "age", "-d", "-i", str(key), str(artifact)], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def secret_of(identity) -> str:
    return identity_text(identity).splitlines()[1]


def pyrage_identity(identity):
    return pyrage.x25519.Identity.from_str(secret_of(identity))


# --- the format against the stock tool and pyrage ----------------------------------------------

SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, (1 << 20) + 7]


@needs_age
@pytest.mark.parametrize("size", SIZES)
def test_our_artifacts_decrypt_with_stock_age_and_pyrage_for_each_of_several_recipients(
    size, tmp_path
):
    first, escrow = generate_identity(), generate_identity()
    plaintext = os.urandom(size)
    artifact = tmp_path / "artifact.age"
    artifact.write_bytes(age_artifact(plaintext, [first.recipient, escrow.recipient]))

    for identity in (first, escrow):
        assert stock_age_decrypt(artifact, key_file(tmp_path, identity)) == plaintext
        assert pyrage.decrypt(artifact.read_bytes(), [pyrage_identity(identity)]) == plaintext


@needs_age
@pytest.mark.parametrize("size", SIZES)
def test_artifacts_of_stock_age_and_pyrage_decrypt_here(size, tmp_path):
    identity = generate_identity()
    plaintext = os.urandom(size)
    stock = subprocess.run(  # noqa: S603 - fixed argv
        [AGE or "age", "-r", identity.recipient], input=plaintext, capture_output=True, check=True
    ).stdout
    theirs = pyrage.encrypt(plaintext, [pyrage.x25519.Recipient.from_str(identity.recipient)])

    for artifact in (stock, theirs):
        assert AgeReader(io.BytesIO(artifact), [identity]).read() == plaintext


def test_keys_round_trip_with_pyrage_and_bad_keys_are_named():
    identity = generate_identity()
    assert str(pyrage_identity(identity).to_public()) == identity.recipient
    with pytest.raises(age_format.AgeKeyError, match="'age1nope' is not an age X25519 recipient"):
        age_format.parse_recipient("age1nope")
    with pytest.raises(age_format.AgeKeyError, match="bad checksum"):
        age_format.parse_recipient(
            identity.recipient[:-1] + ("q" if identity.recipient[-1] != "q" else "p")
        )
    assert "AGE-SECRET" not in repr(identity)


def test_tampered_truncated_or_extended_artifacts_and_a_wrong_identity_are_refused():
    identity = generate_identity()
    plaintext = os.urandom(200_000)
    artifact = age_artifact(plaintext, [identity.recipient])

    def read(data: bytes, identities=(identity,)) -> bytes:
        return AgeReader(io.BytesIO(data), list(identities)).read()

    assert read(artifact) == plaintext
    flipped = bytearray(artifact)
    flipped[len(artifact) // 2] ^= 1
    header_end = artifact.index(b"\n---") + 1
    header_flipped = bytearray(artifact)
    header_flipped[header_end - 5] ^= 1  # inside the stanza body: the MAC or unwrap fails
    for broken in (bytes(flipped), artifact[:-1], artifact[: 65536 + 16 + 200], artifact + b"x"):
        with pytest.raises(AgeError):
            read(broken)
    with pytest.raises(AgeError):
        read(bytes(header_flipped))
    with pytest.raises(age_format.AgeNoIdentity, match="none of the 1 age identities"):
        read(artifact, [generate_identity()])


def test_the_pipeline_writes_age_whose_plaintext_open_artifact_gives_back():
    identity = generate_identity()
    data = os.urandom(300_000) + b"dump text " * 200_000
    sink = MemorySink()
    options = PipelineOptions(age_recipients=(identity.recipient,), key_id="age:x")
    result = run_pipeline(io.BytesIO(data), [sink], options)

    artifact = bytes(sink.buffer)
    assert artifact.startswith(age_format.AGE_MAGIC)
    assert result.sha256 == hashlib.sha256(artifact).hexdigest()
    with open_artifact(io.BytesIO(artifact), age_identities=lambda: [identity]) as plain:
        assert plain.read() == data
    with pytest.raises(ArtifactCorrupt, match="none of the 1 age identities"):
        open_artifact(io.BytesIO(artifact), age_identities=lambda: [generate_identity()])
    with pytest.raises(ValueError, match="not both"):
        PipelineOptions(encryption_key=b"k" * 32, age_recipients=(identity.recipient,))


# --- real backups -------------------------------------------------------------------------------


@pytest.fixture
def identities(tmp_path):
    """The organisation's identity and the installation's escrow identity (in its file)."""
    own, escrow = generate_identity(), generate_identity()
    return {"own": own, "escrow": escrow, "escrow_file": key_file(tmp_path, escrow, "escrow.txt")}


@pytest.fixture
def s3_destination(settings, organisation, s3_server, s3_bucket):
    settings.STRONGBOX_MASTER_KEY = MASTER_KEY  # its secrets are stored under it
    config, secrets = s3_destination_config(s3_server, s3_bucket)
    return factories.DestinationFactory(
        organisation=organisation,
        name="S3",
        kind=DestinationKind.S3,
        config=config,
        secrets=secrets,
        is_default=False,
    )


@needs_age
def test_a_postgres_backup_to_age_recipients_restores_and_decrypts_with_stock_age_and_zstd(
    settings, organisation, environment, destination, make_postgres_database, identities, tmp_path
):
    settings.STRONGBOX_MASTER_KEY = "a-master-key-that-age-takes-precedence-over"
    settings.STRONGBOX_AGE_RECIPIENTS = identities["escrow"].recipient
    age_keys_update(
        organisation=organisation,
        recipients=[identities["own"].recipient],
        identity=identity_text(identities["own"]),
    )
    spec = make_postgres_database()
    fill_postgres(spec, rows=400)
    expected = table_checksums(spec)

    backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, spec)
    )

    assert backup.status == BackupStatus.COMPLETED, backup.message
    assert backup.encryption == Encryption.AGE and backup.encrypted
    fingerprints = [
        age_format.recipient_fingerprint(identities[name].recipient) for name in ("own", "escrow")
    ]
    assert backup.key_id == "age:" + ",".join(fingerprints)
    assert backup.copies.get().key.endswith(".pgdump.zst.age")
    assert keys_needed() == []  # age backups need no master key

    # Without Strongbox: the escrow key, the stock tools, a fresh database.
    dump = subprocess.run(  # noqa: S603 - fixed argv
        ["zstd", "-d", "-c"],
        input=stock_age_decrypt(artifact_path(backup), identities["escrow_file"]),
        capture_output=True,
        check=True,
    ).stdout
    fresh = make_postgres_database()
    subprocess.run(  # noqa: S603 - fixed argv
        [
            "pg_restore",
            "--no-owner",
            "-h",
            spec.host,
            "-p",
            str(spec.port),
            "-U",
            spec.user,
            "-d",
            fresh.name,
        ],
        input=dump,
        check=True,
        env={**os.environ, "PGPASSWORD": spec.password or ""},
    )
    assert table_checksums(fresh) == expected

    # Through Strongbox: the restore decrypts with the organisation's own identity.
    with PostgreSQLEngine().connect(spec) as conn:
        conn.execute("DELETE FROM customers WHERE id % 2 = 0")
    restore = run_restore_now(backup=backup, target_type="same")
    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert table_checksums(spec) == expected


def test_the_api_and_the_backup_page_show_the_format_and_key_id(
    settings,
    organisation,
    environment,
    destination,
    make_sqlite_database,
    client_for,
    owner,
    client,
    identities,
):
    settings.STRONGBOX_MASTER_KEY = "a-master-key-for-the-aes-backup"
    age_keys_update(organisation=organisation, recipients=[identities["own"].recipient])
    spec = make_sqlite_database()
    fill_sqlite(spec, rows=20)
    age_backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, spec)
    )
    age_keys_update(organisation=organisation, recipients=[])
    plain_backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, spec, name="b")
    )

    api = client_for(organisation, Role.VIEWER)
    body = api.get(f"/api/backups/{age_backup.id}").json()
    assert (body["encryption"], body["keyId"]) == ("age", age_backup.key_id)
    aes = api.get(f"/api/backups/{plain_backup.id}").json()
    assert aes["encryption"] == "aes-256-gcm" and aes["keyId"].startswith("hkdf:")
    client.force_login(owner)
    page = client.get(f"/backups/{age_backup.id}/").content.decode()
    assert "age (X25519 recipients)" in page and age_backup.key_id in page


def test_a_worker_without_an_identity_backs_up_but_its_restore_says_the_identity_is_missing(
    settings, organisation, environment, destination, make_sqlite_database, identities, tmp_path
):
    age_keys_update(organisation=organisation, recipients=[identities["own"].recipient])
    spec = make_sqlite_database()
    fill_sqlite(spec, rows=50)
    backed_up = table_checksums(spec)
    backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, spec)
    )
    assert backup.status == BackupStatus.COMPLETED, backup.message
    with spec_connection(spec) as conn:
        conn.execute("DELETE FROM customers")
    changed = table_checksums(spec)

    restore = run_restore_now(backup=backup, target_type="same")

    assert any("no age identity is configured here" in w for w in restore.plan_warnings)
    assert restore.status == RestoreStatus.FAILED
    assert "no age identity is configured" in restore.message
    assert "STRONGBOX_AGE_IDENTITY_FILE" in restore.message
    assert age_format.recipient_fingerprint(identities["own"].recipient) in restore.message
    assert table_checksums(spec) == changed  # nothing touched
    assert leftovers(spec) == []
    tmp = Path(settings.STRONGBOX_TMP_DIR)
    assert not tmp.exists() or list(tmp.iterdir()) == []  # nothing decrypted left behind

    assert backup_test_restore(backup=backup) is False  # a drill says the same
    backup.refresh_from_db()
    assert "no age identity is configured" in backup.verification_message

    settings.STRONGBOX_AGE_IDENTITY_FILE = str(key_file(tmp_path, identities["own"]))
    assert backup_test_restore(backup=backup) is True
    again = run_restore_now(backup=backup, target_type="same")
    assert again.status == RestoreStatus.COMPLETED, again.message
    assert table_checksums(spec) == backed_up


def test_rewrap_gives_existing_backups_to_new_recipients_and_says_why_others_cannot(
    settings,
    organisation,
    environment,
    destination,
    s3_destination,
    make_sqlite_database,
    identities,
    capsys,
    tmp_path,
):
    spec = make_sqlite_database()
    fill_sqlite(spec, rows=80)
    expected = table_checksums(spec)
    database = database_for(environment, spec)
    both = [str(destination.id), str(s3_destination.id)]
    settings.STRONGBOX_MASTER_KEY = MASTER_KEY
    aes_backup = run_backup_now(
        environment=environment, kind="database", database=database, destination_ids=both
    )
    age_keys_update(
        organisation=organisation,
        recipients=[identities["own"].recipient],
        identity=identity_text(identities["own"]),
    )
    backup = run_backup_now(
        environment=environment, kind="database", database=database, destination_ids=both
    )
    assert backup.status == BackupStatus.COMPLETED, backup.message
    assert aes_backup.encryption == Encryption.AES_256_GCM
    old_checksum, old_key_id = backup.checksum_sha256, backup.key_id
    payload_before = (
        local_artifact(backup, destination).read_bytes().split(b"\n---", 1)[1].split(b"\n", 1)[1]
    )

    new = generate_identity()
    age_keys_update(
        organisation=organisation, recipients=[new.recipient, identities["own"].recipient]
    )
    call_command("rewrap_age_backups", "--organisation", organisation.slug)
    output = capsys.readouterr().out

    backup.refresh_from_db()
    assert f"{backup.name}: re-wrapped for {backup.key_id}" in output
    assert "1 AES-256-GCM backup(s) cannot be re-wrapped" in output
    assert backup.key_id != old_key_id and backup.checksum_sha256 != old_checksum
    stored = local_artifact(backup, destination).read_bytes()
    assert stored.split(b"\n---", 1)[1].split(b"\n", 1)[1] == payload_before  # payload unchanged
    assert hashlib.sha256(stored).hexdigest() == backup.checksum_sha256
    assert {c.size for c in backup.copies.all()} == {backup.size}
    s3_copy = backup.copies.get(destination=s3_destination)
    with open_artifact_stream(backend_for(s3_destination), s3_copy.key) as remote:
        assert remote.read() == stored  # every copy got the same header
    assert backup_verified(backup)  # both copies match the new checksum
    if AGE:
        dump = (
            zstandard.ZstdDecompressor()
            .decompressobj()
            .decompress(
                stock_age_decrypt(
                    local_artifact(backup, destination), key_file(tmp_path, new, "new.txt")
                )
            )
        )
        assert dump.startswith(b"PRAGMA") or b"CREATE TABLE" in dump

    # Only the new identity now: the restore still opens it.
    age_keys_update(organisation=organisation, identity=identity_text(new))
    with spec_connection(spec) as conn:
        conn.execute("DELETE FROM documents")
    restore = run_restore_now(backup=backup, target_type="same")
    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert table_checksums(spec) == expected

    call_command("rewrap_age_backups", "--organisation", organisation.slug)
    # The backup and the restore's safety backup are both for the current recipients.
    assert "0 re-wrapped, 2 already for the current recipients" in capsys.readouterr().out
    with pytest.raises(CannotRewrap, match="only age backups"):
        age_backup_rewrap(backup=aes_backup)
    age_keys_update(
        organisation=organisation, recipients=[generate_identity().recipient], identity=""
    )
    with pytest.raises(CannotRewrap, match="no age identity is configured"):
        age_backup_rewrap(backup=backup)
    age_keys_update(organisation=organisation, identity=identity_text(generate_identity()))
    with pytest.raises(CannotRewrap, match="does not open"):
        age_backup_rewrap(backup=backup)
    backup.refresh_from_db()
    assert (
        hashlib.sha256(local_artifact(backup, destination).read_bytes()).hexdigest()
        == backup.checksum_sha256
    )


def test_a_copy_that_cannot_be_rewrapped_leaves_every_copy_as_it_was(
    settings,
    organisation,
    environment,
    destination,
    s3_destination,
    make_sqlite_database,
    identities,
):
    spec = make_sqlite_database()
    fill_sqlite(spec, rows=40)
    own = identities["own"]
    age_keys_update(
        organisation=organisation, recipients=[own.recipient], identity=identity_text(own)
    )
    backup = run_backup_now(
        environment=environment,
        kind="database",
        database=database_for(environment, spec),
        destination_ids=[str(destination.id), str(s3_destination.id)],
    )
    assert backup.status == BackupStatus.COMPLETED, backup.message
    first, second = backup.copies.select_related("destination").order_by("created_at", "pk")
    with open_artifact_stream(backend_for(first.destination), first.key) as stream:
        original = stream.read()
    delete_artifact(backend_for(second.destination), second.key)
    age_keys_update(
        organisation=organisation, recipients=[own.recipient, generate_identity().recipient]
    )

    with pytest.raises(CannotRewrap, match="every copy was left as it was"):
        age_backup_rewrap(backup=backup)

    with open_artifact_stream(backend_for(first.destination), first.key) as stream:
        assert stream.read() == original  # its old header back, byte for byte
    assert Backup.objects.get(pk=backup.pk).key_id == backup.key_id


def test_two_organisations_with_different_recipients_never_open_each_others_backups(
    settings, organisation, other_organisation, environment, destination, make_sqlite_database
):
    ours, theirs = generate_identity(), generate_identity()
    age_keys_update(
        organisation=organisation, recipients=[ours.recipient], identity=identity_text(ours)
    )
    age_keys_update(
        organisation=other_organisation,
        recipients=[theirs.recipient],
        identity=identity_text(theirs),
    )
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
    mine, other = backups
    assert mine.key_id == "age:" + age_format.recipient_fingerprint(ours.recipient)
    assert other.key_id == "age:" + age_format.recipient_fingerprint(theirs.recipient)

    for backup, foreign in ((mine, other_organisation), (other, organisation)):
        with plaintext_stream(backup) as plain:  # its own organisation's identity opens it
            assert plain.read(1)
        with artifact_path(backup).open("rb") as raw, pytest.raises(ArtifactCorrupt):
            open_artifact(raw, **artifact_keys(foreign))
    # Without an identity of its own, an organisation is not lent another's.
    AgeKeys.objects.filter(organisation=organisation).update(identity="")
    restore = run_restore_now(backup=mine, target_type="same")
    assert restore.status == RestoreStatus.FAILED
    assert "no age identity is configured for organisation 'quant-gov'" in restore.message


def test_manage_py_check_names_a_bad_installation_key(settings, tmp_path):
    settings.STRONGBOX_AGE_RECIPIENTS = f"{generate_identity().recipient}, age1typo"
    bad_identity = tmp_path / "identity.txt"
    bad_identity.write_text("# a comment\nAGE-SECRET-KEY-1NOTAKEY\n")
    settings.STRONGBOX_AGE_IDENTITY_FILE = str(bad_identity)

    errors = {error.id: error.msg for error in check_age_settings()}

    assert "'age1typo' is not an age X25519 recipient" in errors["strongbox.E130"]
    assert "line 2: not an age X25519 identity" in errors["strongbox.E131"]
    assert "NOTAKEY" not in errors["strongbox.E131"]
    settings.STRONGBOX_AGE_RECIPIENTS, settings.STRONGBOX_AGE_IDENTITY_FILE = "", ""
    assert check_age_settings() == []


# --- API, page, admin ---------------------------------------------------------------------------


def test_admins_read_and_set_recipients_and_a_write_only_identity_through_the_api(
    settings, organisation, other_organisation, client_for
):
    settings.STRONGBOX_AGE_RECIPIENTS = generate_identity().recipient
    identity, escrow = generate_identity(), generate_identity()
    api = client_for(organisation, Role.ADMIN)
    url = f"/api/organizations/{organisation.id}/encryption"

    assert api.get(url).json()["recipients"] == []
    response = api.patch(
        url,
        {"recipients": [identity.recipient, escrow.recipient], "identity": identity_text(identity)},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["recipients"] == [identity.recipient, escrow.recipient]
    assert body["identityConfigured"] and body["identityRecipients"] == [identity.recipient]
    assert body["encryption"] == "age" and body["keyId"].count(",") == 2
    assert "identity" not in body and secret_of(identity) not in response.content.decode()
    assert AgeKeys.objects.get(organisation=organisation).identity.startswith("# public key")


@pytest.mark.parametrize(
    ("payload", "field", "needle"),
    [
        ({"recipients": ["age1notakey"]}, "recipients", "'age1notakey' is not an age X25519"),
        ({"recipients": ["ssh-ed25519 AAAA"]}, "recipients", "is not an age X25519 recipient"),
        ({"recipients": "age1abc"}, "recipients", ""),
        ({"identity": "AGE-SECRET-KEY-1QQQQ"}, "identity", "not an age X25519 identity"),
        ({"identity": "# only a comment"}, "identity", "holds no AGE-SECRET-KEY-1"),
    ],
)
def test_a_bad_key_is_a_400_naming_it(organisation, client_for, payload, field, needle):
    response = client_for(organisation, Role.ADMIN).patch(
        f"/api/organizations/{organisation.id}/encryption", payload, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert field in error["fields"]
    assert needle in str(error["fields"][field])
    assert "QQQQ" not in response.content.decode() or field != "identity"


def test_only_admins_of_the_organisation_reach_its_encryption_settings(
    organisation, other_organisation, client_for
):
    url = f"/api/organizations/{organisation.id}/encryption"
    assert client_for(organisation, Role.OPERATOR).get(url).status_code == 403
    assert client_for(organisation, Role.OPERATOR).patch(url, {}, format="json").status_code == 403
    assert client_for(other_organisation, Role.ADMIN).get(url).status_code == 404
    assert (
        client_for(other_organisation, Role.ADMIN)
        .patch(url, {"recipients": []}, format="json")
        .status_code
        == 404
    )


def test_the_settings_page_saves_recipients_and_refuses_a_bad_key(
    organisation, owner, viewer, client
):
    identity = generate_identity()
    client.force_login(viewer)
    assert client.get("/settings/encryption/").status_code == 403
    client.force_login(owner)
    assert client.get("/settings/encryption/").status_code == 200

    bad = client.post("/settings/encryption/", {"recipients": "age1wrong"})
    assert bad.status_code == 400
    assert "&#x27;age1wrong&#x27; is not an age X25519 recipient" in bad.content.decode()
    saved = client.post(
        "/settings/encryption/",
        {"recipients": identity.recipient, "identity": identity_text(identity)},
        follow=True,
    )
    assert saved.status_code == 200
    page = saved.content.decode()
    assert "Encryption settings saved" in page and identity.recipient in page
    assert secret_of(identity) not in page
    keys = AgeKeys.objects.get(organisation=organisation)
    assert keys.recipients == [identity.recipient] and keys.identity


def test_the_admin_edits_recipients_through_the_same_checks(
    organisation, client, django_user_model
):
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    identity = generate_identity()
    bad = client.post(
        "/admin/backups/agekeys/add/",
        {"organisation": organisation.pk, "recipients_text": "age1bad"},
    )
    assert bad.status_code == 200 and "is not an age X25519 recipient" in bad.content.decode()
    good = client.post(
        "/admin/backups/agekeys/add/",
        {
            "organisation": organisation.pk,
            "recipients_text": identity.recipient,
            "new_identity": identity_text(identity),
        },
    )
    assert good.status_code == 302, good.content.decode()[:2000]
    keys = AgeKeys.objects.get(organisation=organisation)
    assert keys.recipients == [identity.recipient] and keys.identity
    assert (
        secret_of(identity)
        not in client.get(f"/admin/backups/agekeys/{keys.pk}/change/").content.decode()
    )


# --- helpers ----------------------------------------------------------------------------------


def local_artifact(backup: Backup, destination) -> Path:
    copy = backup.copies.get(destination=destination)
    return Path(backend_for(destination).storage().path(copy.key))


def spec_connection(spec):
    return sqlite3.connect(spec.name)


def backup_verified(backup: Backup) -> bool:
    return backup_verify(backup=Backup.objects.get(pk=backup.pk))


def test_a_locked_copy_is_not_rewrapped_and_a_read_only_copy_stays_read_only(
    organisation, environment, destination, make_sqlite_database, identities
):
    spec = make_sqlite_database()
    fill_sqlite(spec, rows=20)
    own = identities["own"]
    age_keys_update(
        organisation=organisation, recipients=[own.recipient], identity=identity_text(own)
    )
    destination.config = {**destination.config, "read_only": "true"}
    destination.save(update_fields=["config"])
    backup = run_backup_now(
        environment=environment,
        kind="database",
        database=database_for(environment, spec),
        destination_ids=[str(destination.id)],
    )
    assert backup.status == BackupStatus.COMPLETED, backup.message
    age_keys_update(
        organisation=organisation, recipients=[own.recipient, generate_identity().recipient]
    )
    copy = backup.copies.get()
    until = timezone.now() + timedelta(days=3)
    BackupCopy.objects.filter(pk=copy.pk).update(locked_until=until)
    before = local_artifact(backup, destination).read_bytes()
    with pytest.raises(CannotRewrap, match="locked until .* cannot be replaced before then"):
        age_backup_rewrap(backup=backup)
    assert local_artifact(backup, destination).read_bytes() == before

    BackupCopy.objects.filter(pk=copy.pk).update(locked_until=timezone.now() - timedelta(days=1))
    assert age_backup_rewrap(backup=backup).changed
    artifact = local_artifact(backup, destination)
    assert artifact.read_bytes() != before
    assert artifact.stat().st_mode & 0o777 == 0o444
