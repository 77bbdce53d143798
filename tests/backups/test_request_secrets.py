"""A backup request decrypts no stored secret: the worker does, when it connects.

Each test stores secrets that no configured key can read: a request that decrypted one
would fail. The request still queues its backup; the worker then fails it, saying why.
"""

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db.models import TextField, Value

from backups.models import Backup, BackupKind, BackupStatus, CopyStatus
from backups.services import backup_claim, backup_execute
from destinations.models import Destination
from organizations.models import Database, Role
from schedules.runs import schedules_run_due
from tests import factories
from tests.backups.helpers import database_for
from tests.fixtures.databases import fill_sqlite
from tests.schedules.test_runs import SLOT, make_schedule

pytestmark = pytest.mark.django_db


def unreadable() -> str:
    """A stored value encrypted under a key nobody has."""
    return "enc1:" + Fernet(Fernet.generate_key()).encrypt(b'{"lost": "yes"}').decode()


def make_unreadable(model, pk, column) -> None:
    # A Value expression is stored as it is (the field would encrypt it again).
    model.objects.filter(pk=pk).update(**{column: Value(unreadable(), output_field=TextField())})


@pytest.fixture
def unreadable_secrets(organisation, destination):
    """Every destination of the organisation, and every database made by ``database_of``,
    holds a secret no key can read."""
    bucket = factories.DestinationFactory(
        organisation=organisation,
        name="bucket",
        kind="s3",
        config={"bucket": "b"},
        secrets={"access_key_id": "AKIA", "secret_access_key": "shh"},
        is_default=False,
    )
    for each in (destination, bucket):
        make_unreadable(Destination, each.pk, "secrets")

    def database_of(environment, **fields) -> Database:
        database = factories.DatabaseFactory(environment=environment, password="pw", **fields)
        make_unreadable(Database, database.pk, "password")
        return database

    return database_of


def test_a_backup_requested_through_the_api_is_queued_without_decrypting_a_secret(
    client_for, organisation, environment, unreadable_secrets
):
    database = unreadable_secrets(environment)
    operator = client_for(organisation, Role.OPERATOR)

    response = operator.post(
        f"/api/environments/{environment.id}/backups",
        {"type": "db", "databaseId": str(database.id)},
        format="json",
    )

    assert response.status_code == 202, response.content
    (backup,) = Backup.objects.filter(database=database)
    assert backup.status == BackupStatus.SCHEDULED
    assert response.json()["results"][0]["id"] == str(backup.id)


def test_the_worker_fails_a_backup_whose_database_password_no_key_reads_and_says_why(
    client_for, organisation, environment, unreadable_secrets
):
    database = unreadable_secrets(environment)
    operator = client_for(organisation, Role.OPERATOR)
    operator.post(f"/api/environments/{environment.id}/backups", {"type": "db"}, format="json")
    (backup,) = Backup.objects.filter(database=database)

    done = backup_execute(backup=backup_claim(backup_id=backup.id))

    assert done.status == BackupStatus.FAILED
    assert "cannot be decrypted with any configured key" in done.message


def test_the_worker_fails_the_copy_of_a_destination_whose_secrets_no_key_reads(
    environment, destination, sqlite_spec
):
    fill_sqlite(sqlite_spec, rows=10)
    database = database_for(environment, sqlite_spec)
    make_unreadable(Destination, destination.pk, "secrets")
    call_command("backup_now", "--database", str(database.id), "--enqueue")
    (backup,) = Backup.objects.filter(database=database)
    assert backup.status == BackupStatus.SCHEDULED

    done = backup_execute(backup=backup_claim(backup_id=backup.id))

    assert done.status == BackupStatus.FAILED
    (copy,) = done.copies.all()
    assert copy.status == CopyStatus.FAILED
    assert "cannot be decrypted with any configured key" in copy.error


def test_a_schedule_queues_its_backups_and_base_backups_without_decrypting_a_secret(
    environment, unreadable_secrets
):
    postgres = unreadable_secrets(environment, engine="postgresql", slug="pg")
    unreadable_secrets(environment, engine="sqlite", slug="lite")
    schedule = make_schedule(environment, db_cron="", full_cron="0 2 * * *", wal_enabled=True)

    result = schedules_run_due(now=SLOT + timedelta(seconds=30))

    assert result.errors == []
    kinds = sorted(Backup.objects.filter(schedule=schedule).values_list("kind", "database"))
    assert kinds == sorted([(BackupKind.FULL, None), (BackupKind.BASE, postgres.pk)])
