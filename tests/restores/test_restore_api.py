"""Seed 003 restore API wired to the restore services: trigger (202), the restore log,
its progress stream, and undo through a safety backup."""

import pytest

from organizations.models import Role
from restores.models import Restore, RestoreStatus
from restores.tasks import run_restore
from tests import factories
from tests.api.test_sse import get, parse
from tests.backups.helpers import database_for, run_backup_now
from tests.fixtures.databases import fill_sqlite, table_checksums

pytestmark = pytest.mark.django_db


@pytest.fixture
def backup(environment, destination, sqlite_spec):
    fill_sqlite(sqlite_spec, rows=60)
    database = database_for(environment, sqlite_spec)
    return run_backup_now(environment=environment, kind="database", database=database)


def _trigger(client, backup, body):
    return client.post(f"/api/backups/{backup.id}/restore", body, format="json")


def test_an_operator_triggers_a_restore_and_gets_the_restore_log_with_202(
    client_for, organisation, backup, sqlite_spec, token_for
):
    before = table_checksums(sqlite_spec)
    operator = client_for(organisation, Role.OPERATOR)

    response = _trigger(operator, backup, {"backupId": str(backup.id), "targetType": "same"})

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "scheduled"
    assert body["backupId"] == str(backup.id)
    assert body["targetType"] == "same"
    restore = Restore.objects.get(pk=body["id"])
    assert restore.take_safety_backup is True

    assert run_restore(str(restore.id)) == RestoreStatus.COMPLETED
    assert run_restore(str(restore.id)) == "skipped"  # a duplicate delivery does nothing
    assert table_checksums(sqlite_spec) == before

    detail = client_for(organisation, Role.VIEWER).get(f"/api/restores/{restore.id}").json()
    assert detail["status"] == "completed" and detail["percent"] == 100.0
    assert detail["safetyBackupId"]
    token = token_for(organisation, Role.VIEWER)
    for url in (
        f"/api/restores/{restore.id}/progress",
        f"/api/backups/{backup.id}/restore/progress",
    ):
        response, stream = get(url, token)
        assert response.status_code == 200
        assert [name for name, _ in parse(stream)] == ["done"]
    logs = operator.get(f"/api/environments/{backup.environment_id}/restore-logs").json()
    assert [item["id"] for item in logs["results"]] == [str(restore.id)]


def test_a_second_restore_into_the_same_target_is_a_409(client_for, organisation, backup):
    operator = client_for(organisation, Role.OPERATOR)
    assert _trigger(operator, backup, {"targetType": "same"}).status_code == 202

    response = _trigger(operator, backup, {"targetType": "same"})

    assert response.status_code == 409
    assert "already running" in response.json()["error"]["message"]


def test_a_target_without_a_compatible_database_is_a_422(client_for, organisation, project, backup):
    target = factories.EnvironmentFactory(project=project)
    factories.DatabaseFactory(environment=target, engine="postgresql")

    response = _trigger(
        client_for(organisation, Role.OPERATOR),
        backup,
        {"targetType": "other", "targetEnvironmentId": str(target.id)},
    )

    assert response.status_code == 422
    assert "no sqlite database" in response.json()["error"]["message"]


def test_a_restore_is_undone_by_restoring_its_safety_backup(
    client_for, organisation, backup, sqlite_spec
):
    operator = client_for(organisation, Role.OPERATOR)
    restore_id = _trigger(operator, backup, {"targetType": "same"}).json()["id"]
    run_restore(restore_id)
    restore = Restore.objects.get(pk=restore_id)

    response = operator.post(
        f"/api/backups/{restore.safety_backup_id}/restore", {"targetType": "same"}, format="json"
    )

    assert response.status_code == 202
    assert run_restore(response.json()["id"]) == RestoreStatus.COMPLETED


def test_another_organisation_cannot_see_the_restore(client_for, other_organisation, backup):
    restore = factories.RestoreFactory(backup=backup)
    response = client_for(other_organisation, Role.ADMIN).get(f"/api/restores/{restore.id}")
    assert response.status_code == 404
