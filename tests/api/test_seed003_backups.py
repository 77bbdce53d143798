"""Seed 003 backup endpoints: lists with the seed's parameters, details, trigger, delete."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import Backup, BackupKind, BackupStatus
from organizations.models import Role
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def database(environment):
    return factories.DatabaseFactory(environment=environment, name="Main", slug="main")


@pytest.fixture
def backups(environment, destination):
    now = timezone.now()
    made = []
    for i, (kind, status) in enumerate(
        [
            (BackupKind.DATABASE, BackupStatus.COMPLETED),
            (BackupKind.FULL, BackupStatus.COMPLETED),
            (BackupKind.DATABASE, BackupStatus.FAILED),
            (BackupKind.FILESYSTEM, BackupStatus.COMPLETED),
        ]
    ):
        backup = factories.BackupFactory(
            environment=environment, kind=kind, status=status, created_at=now - timedelta(hours=i)
        )
        factories.BackupCopyFactory(backup=backup, destination=destination)
        made.append(backup)
    return made


def test_it_lists_environment_backups_newest_first_with_the_seed_envelope(
    client_for, organisation, environment, backups
):
    response = client_for(organisation, Role.VIEWER).get(
        f"/api/environments/{environment.id}/backups"
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "count", "limit", "offset"}
    assert body["count"] == 4 and body["limit"] == 20 and body["offset"] == 0
    assert [item["id"] for item in body["results"]] == [str(b.id) for b in backups]
    first = body["results"][0]
    assert first["type"] == "db"
    assert first["size"] == 1945663
    assert first["destinations"][0]["fileExists"] is True
    assert first["environment"]["id"] == str(environment.id)
    assert first["project"]["id"] == str(environment.project_id)


def test_it_filters_by_status_and_type_with_the_db_synonym(
    client_for, organisation, environment, backups
):
    client = client_for(organisation, Role.VIEWER)
    url = f"/api/environments/{environment.id}/backups"
    assert client.get(url, {"status": "failed"}).json()["count"] == 1
    assert client.get(url, {"type": "db"}).json()["count"] == 2
    assert client.get(url, {"type": "database"}).json()["count"] == 2
    assert client.get(url, {"type": "full"}).json()["count"] == 1
    assert client.get(url, {"type": "filesystem"}).json()["count"] == 1
    assert client.get(url, {"type": "db", "status": "completed"}).json()["count"] == 1


def test_it_pages_with_limit_and_offset_and_clamps_the_limit(
    client_for, organisation, environment, backups
):
    client = client_for(organisation, Role.VIEWER)
    url = f"/api/environments/{environment.id}/backups"
    body = client.get(url, {"limit": 2, "offset": 1}).json()
    assert [item["id"] for item in body["results"]] == [str(b.id) for b in backups[1:3]]
    assert body["count"] == 4 and body["limit"] == 2 and body["offset"] == 1
    assert client.get(url, {"limit": 500}).json()["limit"] == 100


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"type": "tarball"}, "type"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
    ],
)
def test_a_bad_list_parameter_is_a_400_naming_it(
    client_for, organisation, environment, params, field
):
    response = client_for(organisation, Role.VIEWER).get(
        f"/api/environments/{environment.id}/backups", params
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in error["fields"]


def test_an_unknown_status_names_the_allowed_values(client_for, organisation, environment):
    response = client_for(organisation).get(
        f"/api/environments/{environment.id}/backups", {"status": "done"}
    )
    assert "in-progress" in response.json()["error"]["message"]


def test_project_backups_span_environments_and_default_to_50(
    client_for, organisation, project, environment, backups
):
    other_env = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    factories.BackupFactory(environment=other_env)
    factories.BackupFactory()  # another organisation's
    response = client_for(organisation, Role.VIEWER).get(f"/api/projects/{project.id}/backups")
    body = response.json()
    assert response.status_code == 200
    assert body["count"] == 5 and body["limit"] == 50
    assert {item["environment"]["name"] for item in body["results"]} == {"Staging", "Production"}
    failed = client_for(organisation).get(
        f"/api/projects/{project.id}/backups", {"status": "failed"}
    )
    assert failed.json()["count"] == 1


def test_backup_details_include_size_status_and_destinations(
    client_for, organisation, backups, destination
):
    backup = backups[0]
    response = client_for(organisation, Role.VIEWER).get(f"/api/backups/{backup.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed"
    assert body["size"] == 1945663
    assert body["destinations"][0]["id"] == str(destination.id)
    assert body["destinations"][0]["name"] == "Local disk"


def test_another_organisations_backup_is_not_found(client_for, other_organisation, backups):
    response = client_for(other_organisation).get(f"/api/backups/{backups[0].id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_malformed_id_is_not_found(client_for, organisation):
    assert client_for(organisation).get("/api/backups/not-a-uuid").status_code == 404


def test_trailing_slashes_are_accepted(client_for, organisation, environment, backups):
    client = client_for(organisation, Role.VIEWER)
    assert client.get(f"/api/environments/{environment.id}/backups/").status_code == 200
    assert client.get(f"/api/backups/{backups[0].id}/").status_code == 200


def test_an_operator_triggers_a_db_backup_per_database(
    client_for, organisation, environment, destination, database, django_capture_on_commit_callbacks
):
    second = factories.DatabaseFactory(environment=environment, name="Other", slug="other")
    with django_capture_on_commit_callbacks(execute=False):
        response = client_for(organisation, Role.OPERATOR).post(
            f"/api/environments/{environment.id}/backups",
            {"type": "db", "label": "Before the migration"},
            format="json",
        )
    assert response.status_code == 202
    body = response.json()
    assert body["count"] == 2
    assert {item["database"]["id"] for item in body["results"]} == {
        str(database.id),
        str(second.id),
    }
    assert {item["status"] for item in body["results"]} == {"scheduled"}
    assert {item["label"] for item in body["results"]} == {"Before the migration"}


def test_a_full_backup_can_name_its_destination(
    client_for, organisation, environment, database, django_capture_on_commit_callbacks
):
    target = factories.DestinationFactory(
        organisation=organisation, name="Offsite", is_default=False
    )
    with django_capture_on_commit_callbacks(execute=False):
        response = client_for(organisation, Role.OPERATOR).post(
            f"/api/environments/{environment.id}/backups",
            {"type": "full", "destination": str(target.id)},
            format="json",
        )
    assert response.status_code == 202, response.json()
    backup = Backup.objects.get(pk=response.json()["results"][0]["id"])
    assert backup.kind == "full"
    assert list(backup.destinations.all()) == [target]


def test_an_unknown_destination_is_a_400_naming_it(
    client_for, organisation, environment, database, destination
):
    response = client_for(organisation, Role.OPERATOR).post(
        f"/api/environments/{environment.id}/backups",
        {"type": "db", "destination": str(uuid.uuid4())},
        format="json",
    )
    assert response.status_code == 400
    assert "destination" in response.json()["error"]["fields"]


def test_an_unknown_type_is_a_400_naming_it(client_for, organisation, environment):
    response = client_for(organisation, Role.OPERATOR).post(
        f"/api/environments/{environment.id}/backups", {"type": "tarball"}, format="json"
    )
    assert response.status_code == 400
    assert "type" in response.json()["error"]["fields"]


def test_a_second_backup_while_one_runs_is_a_409(
    client_for, organisation, environment, database, destination
):
    factories.BackupFactory(
        environment=environment, database=database, status=BackupStatus.IN_PROGRESS
    )
    response = client_for(organisation, Role.OPERATOR).post(
        f"/api/environments/{environment.id}/backups", {"type": "db"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


def test_a_viewer_cannot_trigger_a_backup(client_for, organisation, environment, database):
    response = client_for(organisation, Role.VIEWER).post(
        f"/api/environments/{environment.id}/backups", {"type": "db"}, format="json"
    )
    assert response.status_code == 403


def test_an_admin_deletes_a_backup_asynchronously(
    client_for, organisation, backups, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(organisation, Role.ADMIN).delete(f"/api/backups/{backups[0].id}")
    assert response.status_code == 202
    assert response.json()["status"] == "deleting"
    assert len(callbacks) == 1  # the cleanup task is enqueued on commit
    backups[0].refresh_from_db()
    assert backups[0].status == BackupStatus.DELETING


def test_an_operator_cannot_delete_a_backup(client_for, organisation, backups):
    response = client_for(organisation, Role.OPERATOR).delete(f"/api/backups/{backups[0].id}")
    assert response.status_code == 403


def test_a_running_backup_cannot_be_deleted(client_for, organisation, environment):
    running = factories.BackupFactory(environment=environment, status=BackupStatus.IN_PROGRESS)
    response = client_for(organisation).delete(f"/api/backups/{running.id}")
    assert response.status_code == 409


def test_cron_presets_come_with_next_runs(client_for, organisation):
    response = client_for(organisation, Role.VIEWER).get(
        "/api/backups/cron-presets", {"timezone": "Europe/London"}
    )
    assert response.status_code == 200
    presets = {p["name"]: p for p in response.json()["results"]}
    assert presets["daily"]["cron"] == "0 2 * * *"
    assert len(presets["daily"]["nextRuns"]) == 5


def test_cron_presets_reject_an_unknown_timezone(client_for, organisation):
    response = client_for(organisation).get("/api/backups/cron-presets", {"timezone": "Mars/Base"})
    assert response.status_code == 400
    assert "timezone" in response.json()["error"]["fields"]
