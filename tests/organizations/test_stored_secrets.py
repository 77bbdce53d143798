"""Stored secrets (database passwords, destination secrets): encrypted at rest under the
newest master key, readable after SECRET_KEY changes, re-encrypted by ``rotate_keys``."""

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import CommandError, call_command
from django.db.models import TextField, Value
from django.db.models.functions import Cast

from destinations.models import Destination
from organizations.fields import local_secrets_key
from organizations.models import Database
from tests import factories

pytestmark = pytest.mark.django_db

K1 = "first-master-key-7f3a9c"
K2 = "second-master-key-b81d2e"


def old_fernet(secret: str) -> Fernet:
    """The field key exactly as the first version derived it (from the master key, or from
    SECRET_KEY when none was set)."""
    digest = hashlib.sha256(b"strongbox-field-encryption:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def stored(model, pk, column) -> str:
    """The column as stored (a Cast skips the field's decryption)."""
    rows = model.objects.filter(pk=pk).annotate(raw=Cast(column, TextField()))
    return rows.values_list("raw", flat=True).get()


def store_raw(model, pk, column, value: str) -> None:
    """Store a value as it is (a Value expression skips the field's encryption)."""
    model.objects.filter(pk=pk).update(**{column: Value(value, output_field=TextField())})


def under(fernet: Fernet, value: str) -> str:
    return fernet.decrypt(value.removeprefix("enc1:").encode()).decode()


@pytest.fixture
def secrets_in_two_organisations(settings, environment, other_organisation):
    """A database password in each organisation and an S3 destination's secrets."""
    settings.STRONGBOX_MASTER_KEY = K1
    other_environment = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation)
    )
    ours = factories.DatabaseFactory(environment=environment, password="ours-pw")
    theirs = factories.DatabaseFactory(environment=other_environment, password="theirs-pw")
    bucket = factories.DestinationFactory(
        organisation=other_organisation,
        kind="s3",
        config={"bucket": "b"},
        secrets={"access_key_id": "AKIA-2", "secret_access_key": "shh"},
    )
    return ours, theirs, bucket


def test_rotate_keys_re_encrypts_every_stored_secret_under_the_newest_key(
    settings, secrets_in_two_organisations, capsys
):
    ours, theirs, bucket = secrets_in_two_organisations
    settings.STRONGBOX_MASTER_KEY = f"{K2},{K1}"

    call_command("rotate_keys")

    output = capsys.readouterr().out
    assert "organizations.Database.password: 0 current, 2 re-encrypted" in output
    assert "destinations.Destination.secrets: 0 current, 1 re-encrypted" in output
    assert under(old_fernet(K2), stored(Database, ours.pk, "password")) == "ours-pw"
    settings.STRONGBOX_MASTER_KEY = K2
    assert Database.objects.get(pk=ours.pk).password == "ours-pw"
    assert Database.objects.get(pk=theirs.pk).password == "theirs-pw"
    assert Destination.objects.get(pk=bucket.pk).secrets["secret_access_key"] == "shh"


def test_rotate_keys_a_second_time_changes_nothing(settings, secrets_in_two_organisations, capsys):
    ours, _, bucket = secrets_in_two_organisations
    settings.STRONGBOX_MASTER_KEY = f"{K2},{K1}"
    call_command("rotate_keys")
    before = stored(Database, ours.pk, "password"), stored(Destination, bucket.pk, "secrets")
    capsys.readouterr()

    call_command("rotate_keys")

    assert "3 already under the newest key, 0 re-encrypted" in capsys.readouterr().out
    assert (stored(Database, ours.pk, "password"), stored(Destination, bucket.pk, "secrets")) == (
        before
    )


def test_rotate_keys_names_a_secret_no_key_can_read_and_changes_nothing(
    settings, secrets_in_two_organisations
):
    ours, theirs, bucket = secrets_in_two_organisations
    lost = Fernet(Fernet.generate_key()).encrypt(b"lost-pw").decode()
    store_raw(Database, theirs.pk, "password", "enc1:" + lost)
    settings.STRONGBOX_MASTER_KEY = f"{K2},{K1}"
    before = stored(Database, ours.pk, "password"), stored(Destination, bucket.pk, "secrets")

    with pytest.raises(CommandError) as failure:
        call_command("rotate_keys")

    message = str(failure.value)
    assert f"organizations.Database.password of Database {theirs.pk} ({theirs.name})" in message
    assert "nothing was changed" in message
    assert (stored(Database, ours.pk, "password"), stored(Destination, bucket.pk, "secrets")) == (
        before
    )
    with pytest.raises(CommandError):
        call_command("rotate_keys", "--check")


def test_rotate_keys_check_counts_what_needs_re_encrypting_without_changing_it(
    settings, secrets_in_two_organisations, capsys
):
    ours, _, _ = secrets_in_two_organisations
    settings.STRONGBOX_MASTER_KEY = f"{K2},{K1}"
    before = stored(Database, ours.pk, "password")

    with pytest.raises(CommandError, match="needs attention"):
        call_command("rotate_keys", "--check")

    assert "0 already under the newest key, 3 to re-encrypt" in capsys.readouterr().out
    assert stored(Database, ours.pk, "password") == before


def test_a_secret_stored_by_the_first_version_under_secret_key_is_read_and_rotated(
    settings, environment
):
    # Before master keys were required, a value was encrypted under SECRET_KEY when no
    # master key was set.
    database = factories.DatabaseFactory(environment=environment)
    token = old_fernet(settings.SECRET_KEY).encrypt(b"legacy-pw").decode()
    store_raw(Database, database.pk, "password", "enc1:" + token)

    assert Database.objects.get(pk=database.pk).password == "legacy-pw"
    call_command("rotate_keys")
    settings.SECRET_KEY = "a-rotated-secret-key"

    assert Database.objects.get(pk=database.pk).password == "legacy-pw"
    with pytest.raises(InvalidToken):
        under(old_fernet("insecure-dev-key-change-me"), stored(Database, database.pk, "password"))


def test_a_secret_stored_by_the_first_version_under_its_master_key_reads_after_rotation(
    settings, environment
):
    database = factories.DatabaseFactory(environment=environment)
    token = old_fernet(K1).encrypt(b"old-master-pw").decode()
    store_raw(Database, database.pk, "password", "enc1:" + token)
    settings.STRONGBOX_MASTER_KEY = f"{K2},{K1}"

    assert Database.objects.get(pk=database.pk).password == "old-master-pw"
    call_command("rotate_keys")
    settings.STRONGBOX_MASTER_KEY = K2
    assert Database.objects.get(pk=database.pk).password == "old-master-pw"


def test_a_plaintext_secret_from_before_encryption_at_rest_is_encrypted_by_rotate_keys(
    environment,
):
    database = factories.DatabaseFactory(environment=environment)
    store_raw(Database, database.pk, "password", "plain-pw")

    call_command("rotate_keys")

    assert stored(Database, database.pk, "password").startswith("enc1:")
    assert Database.objects.get(pk=database.pk).password == "plain-pw"


def test_changing_secret_key_leaves_stored_secrets_readable(settings, environment):
    database = factories.DatabaseFactory(environment=environment, password="s3cret")

    settings.SECRET_KEY = "a-completely-different-secret-key"

    assert Database.objects.get(pk=database.pk).password == "s3cret"


def test_without_a_master_key_secrets_use_a_generated_local_key_never_secret_key(
    settings, environment, tmp_path
):
    settings.STRONGBOX_MASTER_KEY = ""
    database = factories.DatabaseFactory(environment=environment, password="local-pw")
    key_file = tmp_path / "secrets.key"

    raw = stored(Database, database.pk, "password")

    assert key_file.stat().st_mode & 0o777 == 0o600
    assert under(old_fernet(local_secrets_key(create=False)), raw) == "local-pw"
    with pytest.raises(InvalidToken):
        under(old_fernet(settings.SECRET_KEY), raw)
    settings.SECRET_KEY = "a-completely-different-secret-key"
    assert Database.objects.get(pk=database.pk).password == "local-pw"

    # Setting a master key later: the local key still reads, until rotate_keys moves it over.
    settings.STRONGBOX_MASTER_KEY = K1
    assert Database.objects.get(pk=database.pk).password == "local-pw"
    call_command("rotate_keys")
    key_file.unlink()
    assert Database.objects.get(pk=database.pk).password == "local-pw"
