"""Strongbox's own resources: organisations, projects, environments, databases, destinations."""

import pytest

from backups.models import BackupStatus
from destinations.models import Destination
from organizations.models import Database, Environment, Project, Role
from tests import factories
from tests.fixtures.s3 import s3_destination_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def database(environment):
    return factories.DatabaseFactory(
        environment=environment, name="Main", slug="main", password="hunter2"
    )


# --- organisations ----------------------------------------------------------------------------


def test_a_token_sees_only_its_own_organisation(client_for, organisation, other_organisation):
    body = client_for(organisation, Role.VIEWER).get("/api/organizations").json()
    assert [o["slug"] for o in body["results"]] == ["quant-gov"]
    assert body["results"][0]["role"] == "viewer"
    assert body["count"] == 1


def test_a_user_sees_every_organisation_they_belong_to(
    api_client, owner, organisation, other_organisation
):
    factories.MembershipFactory(user=owner, organisation=other_organisation, role=Role.VIEWER)
    api_client.force_authenticate(owner)
    body = api_client.get("/api/organizations").json()
    assert {(o["slug"], o["role"]) for o in body["results"]} == {
        ("quant-gov", "admin"),
        ("elsewhere", "viewer"),
    }


def test_a_jwt_acts_in_the_organisation_named_by_the_header(
    api_client, owner, organisation, other_organisation, project
):
    factories.MembershipFactory(user=owner, organisation=other_organisation, role=Role.VIEWER)
    token = api_client.post(
        "/api/auth/token", {"username": "owner", "password": "password"}, format="json"
    ).json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    ambiguous = api_client.get("/api/projects")
    assert ambiguous.status_code == 400
    assert "X-Organization" in ambiguous.json()["error"]["fields"]
    mine = api_client.get("/api/projects", HTTP_X_ORGANIZATION="quant-gov").json()
    assert [p["slug"] for p in mine["results"]] == ["dashboard"]
    theirs = api_client.get("/api/projects", HTTP_X_ORGANIZATION="elsewhere").json()
    assert theirs["results"] == []


# --- projects, environments, databases --------------------------------------------------------


def test_an_admin_creates_a_project_with_a_slug_from_its_name(client_for, organisation):
    response = client_for(organisation).post(
        "/api/projects", {"name": "Billing Service"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["slug"] == "billing-service"
    assert Project.objects.get(pk=response.json()["id"]).organisation == organisation


def test_a_clashing_project_slug_is_a_400_naming_it(client_for, organisation, project):
    response = client_for(organisation).post(
        "/api/projects", {"name": "Again", "slug": "dashboard"}, format="json"
    )
    assert response.status_code == 400
    assert "slug" in response.json()["error"]["fields"]


def test_a_second_project_with_the_same_name_gets_a_free_slug(client_for, organisation, project):
    response = client_for(organisation).post("/api/projects", {"name": "Dashboard"}, format="json")
    assert response.json()["slug"] == "dashboard-2"


def test_a_project_is_renamed_and_deleted(client_for, organisation, project):
    client = client_for(organisation)
    renamed = client.patch(f"/api/projects/{project.id}", {"name": "Console"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Console"
    assert client.delete(f"/api/projects/{project.id}").status_code == 204
    assert not Project.objects.filter(pk=project.id).exists()


def test_a_project_with_backups_cannot_be_deleted(client_for, organisation, environment):
    factories.BackupFactory(environment=environment)
    factories.BackupFactory(environment=environment, status=BackupStatus.DELETED)
    response = client_for(organisation).delete(f"/api/projects/{environment.project_id}")
    assert response.status_code == 409
    assert "1 backup" in response.json()["error"]["message"]


def test_an_operator_cannot_create_a_project(client_for, organisation):
    response = client_for(organisation, Role.OPERATOR).post(
        "/api/projects", {"name": "X"}, format="json"
    )
    assert response.status_code == 403


def test_environments_are_listed_and_created_under_their_project(
    client_for, organisation, project, environment, organisation_dir
):
    uploads = str(organisation_dir / "uploads")
    client = client_for(organisation)
    listed = client.get(f"/api/projects/{project.id}/environments").json()
    assert [e["slug"] for e in listed["results"]] == ["staging"]
    created = client.post(
        f"/api/projects/{project.id}/environments",
        {"name": "Production", "filesPath": uploads},
        format="json",
    )
    assert created.status_code == 201
    env = Environment.objects.get(pk=created.json()["id"])
    assert env.project == project and env.files_path == uploads
    patched = client.patch(f"/api/environments/{env.id}", {"filesPath": ""}, format="json")
    assert patched.json()["filesPath"] == ""


def test_the_database_password_is_write_only(client_for, organisation, environment, database):
    client = client_for(organisation)
    shown = client.get(f"/api/databases/{database.id}").json()
    assert "password" not in shown
    assert shown["hasPassword"] is True
    listed = client.get(f"/api/environments/{environment.id}/databases").json()
    assert "hunter2" not in str(listed)

    created = client.post(
        f"/api/environments/{environment.id}/databases",
        {
            "name": "Orders",
            "engine": "postgresql",
            "host": "db.internal",
            "port": 5432,
            "username": "app",
            "password": "s3cret",
            "databaseName": "orders",
        },
        format="json",
    )
    assert created.status_code == 201
    assert "s3cret" not in created.content.decode()
    stored = Database.objects.get(pk=created.json()["id"])
    assert stored.password == "s3cret"
    client.patch(f"/api/databases/{stored.id}", {"port": 6432}, format="json")
    stored.refresh_from_db()
    assert stored.password == "s3cret" and stored.port == 6432


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X", "engine": "oracle", "databaseName": "x"}, "engine"),
        ({"name": "X", "engine": "mysql"}, "databaseName"),
        ({"name": "X", "engine": "mysql", "databaseName": "x", "port": 70000}, "port"),
        ({"engine": "mysql", "databaseName": "x"}, "name"),
    ],
)
def test_bad_database_input_is_a_400_naming_the_field(
    client_for, organisation, environment, body, field
):
    response = client_for(organisation).post(
        f"/api/environments/{environment.id}/databases", body, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_another_organisations_environment_is_not_found(
    client_for, other_organisation, environment
):
    client = client_for(other_organisation)
    assert client.get(f"/api/environments/{environment.id}").status_code == 404
    assert client.get(f"/api/environments/{environment.id}/databases").status_code == 404
    response = client.post(
        f"/api/environments/{environment.id}/databases",
        {"name": "X", "engine": "sqlite", "databaseName": "/tmp/x"},
        format="json",
    )
    assert response.status_code == 404


# --- destinations -----------------------------------------------------------------------------


def test_s3_secrets_are_write_only_and_encrypted(client_for, organisation):
    response = client_for(organisation).post(
        "/api/backup-destinations",
        {
            "name": "Offsite",
            "kind": "s3",
            "parameters": {
                "bucket": "backups",
                "region": "eu-west-1",
                "access_key_id": "AKIAEXAMPLE",
                "secret_access_key": "very-secret",
            },
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "very-secret" not in response.content.decode()
    assert "AKIAEXAMPLE" not in response.content.decode()
    assert body["parameters"] == {"bucket": "backups", "region": "eu-west-1"}
    assert body["secretParameters"] == ["access_key_id", "secret_access_key"]
    assert body["location"] == "s3://backups"
    stored = Destination.objects.get(pk=body["id"])
    assert stored.secrets["secret_access_key"] == "very-secret"


def test_updating_a_destination_keeps_secrets_that_are_not_sent(client_for, organisation):
    destination = factories.DestinationFactory(
        organisation=organisation,
        kind="s3",
        config={"bucket": "bucket-a"},
        secrets={"access_key_id": "id", "secret_access_key": "key"},
    )
    response = client_for(organisation).patch(
        f"/api/backup-destinations/{destination.id}",
        {"parameters": {"bucket": "bucket-b"}},
        format="json",
    )
    assert response.status_code == 200
    destination.refresh_from_db()
    assert destination.config == {"bucket": "bucket-b"}
    assert destination.secrets == {"access_key_id": "id", "secret_access_key": "key"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X", "kind": "s3", "parameters": {"bucket": "b"}}, "parameters.access_key_id"),
        ({"name": "X", "kind": "local", "parameters": {"colour": "red"}}, "parameters.colour"),
        ({"name": "X", "kind": "ftp"}, "kind"),
        ({"name": "X", "kind": "local", "parameters": {"path": "relative/dir"}}, "parameters.path"),
        ({"name": "Local disk", "kind": "local"}, "name"),
        ({"name": "X", "kind": "local", "parameters": "path=/x"}, "parameters"),
    ],
)
def test_bad_destination_input_is_a_400_naming_the_field(
    client_for, organisation, destination, body, field
):
    response = client_for(organisation).post("/api/backup-destinations", body, format="json")
    assert response.status_code == 400, response.json()
    fields = response.json()["error"]["fields"]
    assert any(name.startswith(field) for name in fields), fields


def test_a_viewer_reads_destinations_but_cannot_create_one(client_for, organisation, destination):
    client = client_for(organisation, Role.VIEWER)
    assert client.get("/api/backup-destinations").json()["count"] == 1
    response = client.post(
        "/api/backup-destinations", {"name": "X", "kind": "local"}, format="json"
    )
    assert response.status_code == 403


def test_a_destination_holding_copies_cannot_be_deleted(client_for, organisation, destination):
    factories.BackupCopyFactory(
        backup=factories.BackupFactory(
            environment=factories.EnvironmentFactory(
                project=factories.ProjectFactory(organisation=organisation)
            )
        ),
        destination=destination,
    )
    response = client_for(organisation).delete(f"/api/backup-destinations/{destination.id}")
    assert response.status_code == 409
    other = factories.DestinationFactory(organisation=organisation)
    assert (
        client_for(organisation).delete(f"/api/backup-destinations/{other.id}").status_code == 204
    )


def test_the_connection_test_writes_reads_and_deletes_a_probe(
    client_for, organisation, organisation_dir
):
    root = organisation_dir / "dest"
    destination = factories.DestinationFactory(
        organisation=organisation, config={"path": str(root)}
    )
    response = client_for(organisation).post(f"/api/backup-destinations/{destination.id}/test")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True, body
    assert body["lastCheckedAt"]
    assert [p for p in root.rglob("*") if p.is_file()] == []  # the probe is gone


def test_a_failing_connection_test_names_the_step(client_for, organisation, organisation_dir):
    blocker = organisation_dir / "not-a-directory"
    blocker.write_text("x")
    destination = factories.DestinationFactory(
        organisation=organisation, config={"path": str(blocker)}
    )
    body = client_for(organisation).post(f"/api/backup-destinations/{destination.id}/test").json()
    assert body["ok"] is False
    assert body["step"] == "write"
    assert body["message"].startswith("write failed")
    destination.refresh_from_db()
    assert destination.last_check_error == body["message"]


@pytest.mark.s3
def test_the_connection_test_works_against_a_real_s3_server(
    client_for, organisation, s3_server, s3_bucket
):
    config, secrets = s3_destination_config(s3_server, s3_bucket)
    destination = factories.DestinationFactory(
        organisation=organisation, kind="s3", config=config, secrets=secrets
    )
    body = client_for(organisation).post(f"/api/backup-destinations/{destination.id}/test").json()
    assert body["ok"] is True, body
    assert "Contents" not in s3_server.client().list_objects_v2(Bucket=s3_bucket)


@pytest.mark.s3
def test_the_connection_test_reports_a_missing_bucket(client_for, organisation, s3_server):
    config, secrets = s3_destination_config(s3_server, "no-such-bucket")
    destination = factories.DestinationFactory(
        organisation=organisation, kind="s3", config=config, secrets=secrets
    )
    body = client_for(organisation).post(f"/api/backup-destinations/{destination.id}/test").json()
    assert body["ok"] is False
    assert "NoSuchBucket" in body["message"] or "bucket" in body["message"].lower()


def test_the_browsable_api_draws_its_forms(client, owner, environment):
    client.force_login(owner)
    for url in (
        "/api/projects",
        f"/api/projects/{environment.project_id}",
        f"/api/environments/{environment.id}/backups",
        f"/api/environments/{environment.id}/backup-schedule",
        "/api/backup-destinations",
    ):
        response = client.get(url, HTTP_ACCEPT="text/html")
        assert response.status_code in (200, 404), url
        assert b"<form" in response.content or response.status_code == 404, url


def test_an_unreachable_s3_endpoint_fails_quickly_with_a_clear_message(client_for, organisation):
    destination = factories.DestinationFactory(
        organisation=organisation,
        kind="s3",
        config={"bucket": "b", "endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"},
        secrets={"access_key_id": "id", "secret_access_key": "key"},
    )
    body = client_for(organisation).post(f"/api/backup-destinations/{destination.id}/test").json()
    assert body["ok"] is False
    # Not which error the closed port gave: that would make the test a port scanner.
    assert (body["step"], body["message"]) == ("connect", "connect failed: not reachable")
    assert body["durationMs"] < 30_000
