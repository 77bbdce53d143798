"""Seed 003 restores: the trigger validates then answers 501; PITR 501; restore logs."""

import uuid

import pytest

from backups.models import BackupStatus
from organizations.models import Role
from restores.models import Restore
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def backup(environment):
    database = factories.DatabaseFactory(environment=environment, name="Main", slug="main")
    return factories.BackupFactory(
        environment=environment, database=database, engine="sqlite", engine_version="3.40.1"
    )


def _restore(client, backup, body):
    return client.post(f"/api/backups/{backup.id}/restore", body, format="json")


def test_an_operator_restores_a_backup_into_its_environment(
    client_for, organisation, backup, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _restore(
            client_for(organisation, Role.OPERATOR),
            backup,
            {"backupId": str(backup.id), "targetType": "same"},
        )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["status"] == "scheduled"
    assert body["backupId"] == str(backup.id)
    assert body["targetEnvironment"]["id"] == str(backup.environment_id)
    assert body["targetType"] == "same"
    assert len(callbacks) == 1  # the restore task is enqueued on commit
    assert Restore.objects.get(pk=body["id"]).requested_by is None  # an API token


def test_a_second_restore_into_the_same_target_is_a_409(client_for, organisation, backup):
    factories.RestoreFactory(backup=backup, status="in-progress")
    response = _restore(client_for(organisation, Role.OPERATOR), backup, {"targetType": "same"})
    assert response.status_code == 409


def test_target_type_new_is_a_422(client_for, organisation, backup):
    response = _restore(client_for(organisation, Role.OPERATOR), backup, {"targetType": "new"})
    assert response.status_code == 422
    assert (
        response.json()["error"]["message"]
        == "targetType 'new' is disabled until orchestration exists"
    )


def test_other_needs_a_target_environment(client_for, organisation, backup):
    response = _restore(client_for(organisation, Role.OPERATOR), backup, {"targetType": "other"})
    assert response.status_code == 400
    assert "targetEnvironmentId" in response.json()["error"]["fields"]


def test_another_organisations_target_environment_is_a_400(
    client_for, organisation, other_organisation, backup
):
    foreign = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation)
    )
    response = _restore(
        client_for(organisation, Role.OPERATOR),
        backup,
        {"targetType": "other", "targetEnvironmentId": str(foreign.id)},
    )
    assert response.status_code == 400
    assert "targetEnvironmentId" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"targetType": "elsewhere"}, "targetType"),
        ({"pitrTimestamp": "yesterday"}, "pitrTimestamp"),
        ({"backupId": str(uuid.uuid4())}, "backupId"),
        ({"targetType": "other", "targetEnvironmentId": "nope"}, "targetEnvironmentId"),
    ],
)
def test_bad_restore_bodies_are_a_400_naming_the_field(
    client_for, organisation, backup, body, field
):
    response = _restore(client_for(organisation, Role.OPERATOR), backup, body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_a_backup_that_is_not_completed_cannot_be_restored(client_for, organisation, environment):
    failed = factories.BackupFactory(environment=environment, status=BackupStatus.FAILED)
    response = _restore(client_for(organisation, Role.OPERATOR), failed, {})
    assert response.status_code == 422
    assert "completed" in response.json()["error"]["message"]


def test_a_viewer_cannot_restore(client_for, organisation, backup):
    assert _restore(client_for(organisation, Role.VIEWER), backup, {}).status_code == 403


def test_pitr_coverage_reports_the_environment_window(client_for, organisation, environment):
    factories.ScheduleFactory(environment=environment, wal_enabled=True, wal_retention_days=7)
    factories.DatabaseFactory(environment=environment, engine="postgresql", name="Main")
    response = client_for(organisation, Role.VIEWER).get(f"/api/environments/{environment.id}/pitr")
    assert response.status_code == 200
    body = response.json()
    assert body["environmentId"] == str(environment.id)
    assert body["walEnabled"] is True and body["walRetentionDays"] == 7
    assert body["status"] == "no-window"
    assert body["earliestRecoverableTime"] is None
    assert [d["databaseName"] for d in body["databases"]] == ["Main"]


def test_a_pitr_timestamp_outside_the_coverage_is_a_422_stating_the_window(
    client_for, organisation, environment
):
    database = factories.DatabaseFactory(environment=environment, engine="postgresql")
    backup = factories.BackupFactory(
        environment=environment, database=database, engine="postgresql"
    )
    response = _restore(
        client_for(organisation, Role.OPERATOR),
        backup,
        {"targetType": "same", "pitrTimestamp": "2026-11-20T10:00:00Z"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert "outside the point-in-time recovery coverage" in error["message"]
    assert "no point-in-time recovery window yet" in error["message"]
    assert "pitrTimestamp" in error["fields"]


def test_a_pitr_timestamp_on_a_backup_of_another_engine_is_a_422_naming_it(
    client_for, organisation, environment
):
    database = factories.DatabaseFactory(environment=environment, name="Cache", engine="sqlite")
    backup = factories.BackupFactory(environment=environment, database=database, engine="sqlite")
    response = _restore(
        client_for(organisation, Role.OPERATOR),
        backup,
        {"targetType": "same", "pitrTimestamp": "2026-11-20T10:00:00Z"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert "needs a PostgreSQL database" in error["message"]
    assert "Cache is a SQLite database" in error["message"]
    assert "pitrTimestamp" in error["fields"]


def test_restore_logs_list_restores_from_or_into_the_environment(
    client_for, organisation, project, environment, backup
):
    other_env = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    into_other = factories.RestoreFactory(
        backup=backup, target_environment=other_env, target_type="other", status="completed"
    )
    same = factories.RestoreFactory(backup=backup, status="completed")
    unrelated = factories.RestoreFactory(
        backup=factories.BackupFactory(environment=other_env), status="completed"
    )
    client = client_for(organisation, Role.VIEWER)
    body = client.get(f"/api/environments/{environment.id}/restore-logs").json()
    assert {r["id"] for r in body["results"]} == {str(into_other.id), str(same.id)}
    assert body["count"] == 2 and body["limit"] == 50
    as_target = client.get(f"/api/environments/{other_env.id}/restore-logs").json()
    assert {r["id"] for r in as_target["results"]} == {str(into_other.id), str(unrelated.id)}
    one = client.get(f"/api/restores/{same.id}").json()
    assert one["backupName"] == backup.name and one["percent"] == 100.0


def test_another_organisations_restore_is_not_found(client_for, other_organisation, backup):
    restore = factories.RestoreFactory(backup=backup)
    assert client_for(other_organisation).get(f"/api/restores/{restore.id}").status_code == 404
