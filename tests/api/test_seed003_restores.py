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
        ({"pitrTimestamp": "0001-01-01T00:00:00+01:00"}, "pitrTimestamp"),
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


# --- restore plans and targetDatabaseId (factories; real restores in tests/restores) ---------


@pytest.fixture
def production(project):
    """Another environment with two SQLite databases and a PostgreSQL one, none named main."""
    env = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    for name, engine, version in (
        ("Analytics", "sqlite", "3.40.1"),
        ("Ledger", "sqlite", "3.40.1"),
        ("Warehouse", "postgresql", "16.2"),
    ):
        factories.DatabaseFactory(
            environment=env, name=name, slug=name.lower(), engine=engine, version=version
        )
    return env


def _plan(client, backup, body):
    return client.post(f"/api/backups/{backup.id}/restore-plan", body, format="json")


def _into(env, database=None):
    body = {"targetType": "other", "targetEnvironmentId": str(env.id)}
    if database is not None:
        body["targetDatabaseId"] = str(database.id)
    return body


def test_a_plan_answers_the_documented_shape_and_creates_nothing(
    client_for, organisation, backup, production
):
    analytics = production.databases.get(slug="analytics")
    backup.database.version = "3.40.1"
    backup.database.save()

    response = _plan(client_for(organisation, Role.OPERATOR), backup, _into(production, analytics))

    assert response.status_code == 200, response.json()
    assert response.json() == {
        "members": [
            {
                "label": "Analytics",
                "source": {
                    "databaseId": str(backup.database_id),
                    "name": "Main",
                    "engine": "sqlite",
                    "version": "3.40.1",
                },
                "target": {
                    "environmentId": str(production.id),
                    "databaseId": str(analytics.id),
                    "name": "Analytics",
                    "engine": "sqlite",
                    "version": "3.40.1",
                },
            }
        ],
        "warnings": ["Main goes into Analytics, a database with another name."],
    }
    assert not Restore.objects.exists()


def test_a_viewer_cannot_plan_and_another_organisation_does_not_find_the_backup(
    client_for, organisation, other_organisation, backup
):
    assert _plan(client_for(organisation, Role.VIEWER), backup, {}).status_code == 403
    assert _plan(client_for(other_organisation, Role.ADMIN), backup, {}).status_code == 404


def test_without_target_database_id_several_candidates_are_a_422_that_says_how_to_choose(
    client_for, organisation, backup, production
):
    for path in ("restore-plan", "restore"):
        response = client_for(organisation, Role.OPERATOR).post(
            f"/api/backups/{backup.id}/{path}", _into(production), format="json"
        )
        assert response.status_code == 422
        assert "targetDatabaseId" in response.json()["error"]["message"]


@pytest.mark.parametrize("path", ["restore-plan", "restore"])
def test_a_target_database_of_another_engine_is_a_422_naming_the_field(
    client_for, organisation, backup, production, path
):
    warehouse = production.databases.get(slug="warehouse")
    response = client_for(organisation, Role.OPERATOR).post(
        f"/api/backups/{backup.id}/{path}", _into(production, warehouse), format="json"
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert "cannot be restored into Warehouse" in error["message"]
    assert list(error["fields"]) == ["targetDatabaseId"]
    assert not Restore.objects.exists()


@pytest.mark.parametrize("path", ["restore-plan", "restore"])
def test_another_organisations_database_is_answered_like_one_that_does_not_exist(
    client_for, organisation, other_organisation, backup, production, path
):
    foreign = factories.DatabaseFactory(
        environment=factories.EnvironmentFactory(
            project=factories.ProjectFactory(organisation=other_organisation)
        )
    )
    operator = client_for(organisation, Role.OPERATOR)
    answers = []
    for reference in (foreign.id, uuid.uuid4()):
        body = {**_into(production), "targetDatabaseId": str(reference)}
        response = operator.post(f"/api/backups/{backup.id}/{path}", body, format="json")
        error = response.json()["error"]
        answers.append((response.status_code, error["message"].replace(str(reference), "<id>")))
        assert list(error["fields"]) == ["targetDatabaseId"]
    assert answers[0] == answers[1] and answers[0][0] == 400
    assert not Restore.objects.exists()


def test_a_target_database_of_another_environment_is_a_400_naming_both(
    client_for, organisation, backup, production
):
    staging_db = factories.DatabaseFactory(environment=backup.environment, name="Cache")
    response = _plan(client_for(organisation, Role.OPERATOR), backup, _into(production, staging_db))
    assert response.status_code == 400
    error = response.json()["error"]
    assert "Cache is a database of" in error["message"] and "Production" in error["message"]
    assert list(error["fields"]) == ["targetDatabaseId"]


@pytest.mark.parametrize("kind", ["full", "filesystem"])
def test_a_target_database_with_a_full_or_files_backup_is_a_422(
    client_for, organisation, environment, production, kind
):
    environment.files_path = "/srv/staging"
    environment.save()
    full = factories.BackupFactory(environment=environment, kind=kind, engine="")
    analytics = production.databases.get(slug="analytics")
    for path in ("restore-plan", "restore"):
        response = client_for(organisation, Role.OPERATOR).post(
            f"/api/backups/{full.id}/{path}", _into(production, analytics), format="json"
        )
        assert response.status_code == 422
        error = response.json()["error"]
        assert "only for a backup of one database" in error["message"]
        assert list(error["fields"]) == ["targetDatabaseId"]


def test_a_plan_warns_of_another_major_version_and_refuses_an_older_server(
    client_for, organisation, environment, production
):
    reports = factories.DatabaseFactory(
        environment=environment, name="Reports", slug="reports", engine="postgresql"
    )
    backup = factories.BackupFactory(
        environment=environment, database=reports, engine="postgresql", engine_version="15.4"
    )
    warehouse = production.databases.get(slug="warehouse")
    operator = client_for(organisation, Role.OPERATOR)

    newer = _plan(operator, backup, _into(production)).json()
    warehouse.version = "14.9"
    warehouse.save()
    older = _plan(operator, backup, _into(production, warehouse))

    assert newer["members"][0]["target"] == {
        "environmentId": str(production.id),
        "databaseId": str(warehouse.id),
        "name": "Warehouse",
        "engine": "postgresql",
        "version": "16.2",
    }
    assert (
        "Reports was backed up from PostgreSQL 15.4; Warehouse runs PostgreSQL 16.2, another "
        "major version." in newer["warnings"]
    )
    assert any("the only PostgreSQL database of" in w for w in newer["warnings"])
    assert older.status_code == 422
    assert list(older.json()["error"]["fields"]) == ["targetDatabaseId"]


def test_a_plan_warns_that_a_restore_is_already_running_where_the_restore_is_a_409(
    client_for, organisation, backup
):
    factories.RestoreFactory(backup=backup, status="in-progress")
    operator = client_for(organisation, Role.OPERATOR)
    plan = _plan(operator, backup, {})
    assert plan.status_code == 200
    assert any("already running" in w for w in plan.json()["warnings"])
    assert _restore(operator, backup, {}).status_code == 409


def test_the_restore_answer_and_log_carry_the_plan(client_for, organisation, backup, production):
    analytics = production.databases.get(slug="analytics")
    operator = client_for(organisation, Role.OPERATOR)
    plan = _plan(operator, backup, _into(production, analytics)).json()

    accepted = _restore(operator, backup, _into(production, analytics)).json()
    detail = operator.get(f"/api/restores/{accepted['id']}").json()
    logs = operator.get(f"/api/environments/{production.id}/restore-logs").json()

    for body in (accepted, detail, logs["results"][0]):
        assert body["members"] == plan["members"]
        assert body["warnings"] == plan["warnings"]
        assert body["targetDatabaseId"] == str(analytics.id)


def test_a_malformed_target_database_id_is_a_400_naming_it(client_for, organisation, backup):
    response = _plan(client_for(organisation, Role.OPERATOR), backup, {"targetDatabaseId": "x"})
    assert response.status_code == 400
    assert "targetDatabaseId" in response.json()["error"]["fields"]
