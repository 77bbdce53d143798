"""Backups and restores are recorded where they happen, through the real paths: a backup of
two databases triggered through the API and run by the task, a restore through the API
whose data is compared, its undo from the restore page, an abort and a delete."""

import sqlite3

import pytest
from django.urls import reverse

from audit.models import ActorType
from backups.models import Backup, BackupStatus
from backups.tasks import run_backup
from organizations.models import Role
from restores.models import Restore, RestoreStatus
from restores.tasks import run_restore
from tests import factories
from tests.audit.helpers import actions, events
from tests.backups.helpers import database_for
from tests.fixtures.databases import fill_sqlite, table_checksums

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_databases(environment, destination, make_sqlite_database):
    specs = [make_sqlite_database(), make_sqlite_database()]
    for index, spec in enumerate(specs):
        fill_sqlite(spec, rows=40 + index)
    return [database_for(environment, spec, name=f"db{i}") for i, spec in enumerate(specs)], specs


def test_a_backup_triggered_through_the_api_is_recorded_once_per_database_with_its_token(
    client_for, organisation, environment, two_databases, other_organisation
):
    operator = client_for(organisation, Role.OPERATOR)

    response = operator.post(
        f"/api/environments/{environment.id}/backups", {"type": "db"}, format="json"
    )

    assert response.status_code == 202, response.content
    backups = Backup.objects.filter(environment=environment)
    triggered = events(organisation, action="backup.trigger")
    assert sorted(e.object_id for e in triggered) == sorted(str(b.id) for b in backups)
    assert len(triggered) == 2
    for event in triggered:
        assert (event.actor_type, event.actor_name) == (ActorType.TOKEN, "operator token")
        assert event.ip == "127.0.0.1"
        assert event.object_type == "backup"
        assert event.details["kind"] == "database" and event.details["trigger"] == "manual"
    assert events(other_organisation) == []


def test_a_restore_and_its_undo_are_recorded_and_really_put_the_data_back(
    client_for, client, owner, organisation, environment, two_databases
):
    databases, specs = two_databases
    operator = client_for(organisation, Role.OPERATOR)
    operator.post(f"/api/environments/{environment.id}/backups", {"type": "db"}, format="json")
    for backup in Backup.objects.filter(environment=environment):
        assert run_backup(str(backup.id)) == BackupStatus.COMPLETED
    backup = Backup.objects.get(database=databases[0])
    backed_up = table_checksums(specs[0])
    with sqlite3.connect(specs[0].name) as conn:  # the data changes after the backup
        conn.execute("INSERT INTO customers (id, name) VALUES (100000, 'after the backup')")
    changed = table_checksums(specs[0])
    assert changed != backed_up

    response = operator.post(
        f"/api/backups/{backup.id}/restore", {"targetType": "same"}, format="json"
    )
    assert response.status_code == 202, response.content
    restore = Restore.objects.get(pk=response.json()["id"])
    assert run_restore(str(restore.id)) == RestoreStatus.COMPLETED
    assert table_checksums(specs[0]) == backed_up

    client.force_login(owner)
    client.post(reverse("restore-undo", args=[restore.id]))
    undo = Restore.objects.get(undoes=restore)
    assert run_restore(str(undo.id)) == RestoreStatus.COMPLETED
    assert table_checksums(specs[0]) == changed

    (requested,) = events(organisation, action="restore.request")
    assert requested.object_id == str(restore.id)
    assert requested.actor_name == "operator token"
    assert requested.details["backup_id"] == str(backup.id)
    assert requested.details["target_type"] == "same"
    (undone,) = events(organisation, action="restore.undo")
    assert (undone.actor_type, undone.actor_name) == (ActorType.USER, "owner")
    assert undone.object_id == str(undo.id) and undone.details["undoes"] == str(restore.id)
    # The safety backups a restore takes are the restore's, not the caller's.
    triggers = [(e.actor_type, e.actor_name) for e in events(organisation, action="backup.trigger")]
    assert (
        triggers == [(ActorType.TOKEN, "operator token")] * 2 + [(ActorType.SYSTEM, "restore")] * 2
    )


def test_an_abort_from_the_page_and_a_delete_through_the_api_are_recorded(
    client, client_for, operator, organisation, environment, destination
):
    database = factories.DatabaseFactory(environment=environment)
    running = factories.BackupFactory(
        environment=environment, database=database, status=BackupStatus.SCHEDULED
    )
    done = factories.BackupFactory(
        environment=environment, database=database, status=BackupStatus.COMPLETED, size=123
    )
    client.force_login(operator)
    client.post(reverse("backup-abort", args=[running.id]))

    response = client_for(organisation, Role.ADMIN).delete(f"/api/backups/{done.id}")

    assert response.status_code == 202, response.content
    (aborted,) = events(organisation, action="backup.abort")
    assert aborted.object_id == str(running.id) and aborted.actor_name == "operator"
    assert aborted.details == {"status_before": "scheduled"}
    (deleted,) = events(organisation, action="backup.delete")
    assert deleted.object_id == str(done.id) and deleted.actor_type == ActorType.TOKEN
    assert deleted.details == {"status_before": "completed", "size": 123}


def test_a_refused_delete_records_nothing(client_for, organisation, environment):
    database = factories.DatabaseFactory(environment=environment)
    running = factories.BackupFactory(
        environment=environment, database=database, status=BackupStatus.IN_PROGRESS
    )

    response = client_for(organisation, Role.ADMIN).delete(f"/api/backups/{running.id}")

    assert response.status_code == 409
    assert "backup.delete" not in actions(organisation)
