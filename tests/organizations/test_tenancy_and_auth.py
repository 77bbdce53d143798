"""Tokens, JWTs, tenancy and secrets at rest."""

from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from config.errors import Forbidden, InvalidInput
from organizations.models import ApiToken, Database, Role
from organizations.services import api_token_create, api_token_revoke
from organizations.tenancy import Tenant, restrict, tenant_for_user
from tests import factories

pytestmark = pytest.mark.django_db


def test_an_api_token_is_stored_only_as_its_hash(organisation):
    token, raw = api_token_create(organisation=organisation, name="ci", role=Role.OPERATOR)
    assert raw.startswith("sbx_")
    stored = ApiToken.objects.get(pk=token.pk)
    assert raw not in (stored.token_hash, stored.token_prefix)
    assert len(stored.token_hash) == 64
    with connection.cursor() as cursor:
        cursor.execute("SELECT token_hash FROM organizations_apitoken")
        assert all(raw not in row[0] for row in cursor.fetchall())


def test_a_token_authenticates_in_its_organisation_with_its_role(organisation, client_for):
    client = client_for(organisation, Role.VIEWER)
    response = client.get("/api/organizations")
    assert response.status_code == 200, response.content
    token = ApiToken.objects.get()
    assert token.last_used_at is not None


def test_a_revoked_token_is_refused(api_client, organisation):
    token, raw = api_token_create(organisation=organisation, name="old", role=Role.ADMIN)
    api_token_revoke(token=token)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = api_client.get("/api/organizations")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid or revoked API token."


def test_no_token_and_a_bad_token_are_401(api_client):
    assert api_client.get("/api/organizations").status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION="Bearer sbx_nonsense")
    assert api_client.get("/api/organizations").status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert api_client.get("/api/organizations").status_code == 401


def test_a_user_exchanges_a_password_for_a_jwt_that_works(api_client, owner):
    response = api_client.post(
        "/api/auth/token", {"username": "owner", "password": "password"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["tokenType"] == "Bearer" and body["expiresIn"] > 0
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert api_client.get("/api/organizations").status_code == 200


def test_a_wrong_password_gets_no_jwt(api_client, owner):
    response = api_client.post(
        "/api/auth/token", {"username": "owner", "password": "nope"}, format="json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid username or password."


def test_a_user_in_several_organisations_must_name_one(organisation, other_organisation):
    user = factories.UserFactory(username="both")
    factories.MembershipFactory(user=user, organisation=organisation, role=Role.ADMIN)
    factories.MembershipFactory(user=user, organisation=other_organisation, role=Role.VIEWER)
    with pytest.raises(InvalidInput):
        tenant_for_user(user, None)
    tenant = tenant_for_user(user, "elsewhere")
    assert tenant.organisation == other_organisation and tenant.role == Role.VIEWER
    with pytest.raises(Forbidden):
        tenant_for_user(user, "not-mine")


def test_restrict_hides_other_organisations_objects(environment, other_organisation):
    mine = factories.DatabaseFactory(environment=environment)
    theirs = factories.DatabaseFactory(
        environment=factories.EnvironmentFactory(
            project=factories.ProjectFactory(organisation=other_organisation)
        )
    )
    visible = restrict(Database.objects.all(), environment.project.organisation)
    assert list(visible) == [mine]
    assert theirs not in visible


def test_roles_are_ordered_viewer_operator_admin(organisation):
    tenant = Tenant(organisation=organisation, role=Role.OPERATOR)
    assert tenant.can(Role.VIEWER) and tenant.can(Role.OPERATOR) and not tenant.can(Role.ADMIN)
    with pytest.raises(Forbidden):
        tenant.require(Role.ADMIN)


def test_database_passwords_are_encrypted_at_rest(environment):
    database = factories.DatabaseFactory(environment=environment, password="s3cret-pw")
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM organizations_database")
        (stored,) = cursor.fetchone()
    assert stored.startswith("enc1:") and "s3cret-pw" not in stored
    assert Database.objects.get(pk=database.pk).password == "s3cret-pw"


def test_destination_secrets_are_encrypted_at_rest(organisation):
    destination = factories.DestinationFactory(
        organisation=organisation,
        kind="s3",
        config={"bucket": "b"},
        secrets={"access_key_id": "AKIA-1", "secret_access_key": "shh"},
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM destinations_destination")
        (stored,) = cursor.fetchone()
    assert "shh" not in stored and "AKIA-1" not in stored
    destination.refresh_from_db()
    assert destination.secrets["secret_access_key"] == "shh"


def test_the_create_api_token_command_prints_a_working_token_once(organisation, capsys, api_client):
    call_command("create_api_token", "quant-gov", "--role", "operator", "--name", "script")
    raw = capsys.readouterr().out.strip()
    token = ApiToken.objects.get(name="script")
    assert token.role == Role.OPERATOR and raw.startswith("sbx_")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api_client.get("/api/organizations").status_code == 200


def test_the_demo_seed_creates_an_organisation_with_a_real_database(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("seed_demo")
    call_command("seed_demo")  # idempotent
    database = Database.objects.get(slug="shop-db")
    import sqlite3

    with sqlite3.connect(database.database_name) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 5000
    assert database.environment.files_path
    # In the demo organisation's own directory of the tenant root.
    demo_root = Path(settings.STRONGBOX_TENANT_ROOT) / "demo"
    assert Path(database.database_name).parent == demo_root
    assert Path(database.environment.files_path).parent == demo_root


def test_the_admin_lists_every_model(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    for model in [
        "organizations/organisation",
        "organizations/membership",
        "organizations/apitoken",
        "organizations/project",
        "organizations/environment",
        "organizations/database",
        "organizations/pathgrant",
        "destinations/destination",
        "backups/backup",
        "backups/backupcopy",
        "schedules/schedule",
        "alerts/alert",
        "alerts/notificationchannel",
        "alerts/notificationdelivery",
        "restores/restore",
    ]:
        response = client.get(f"/admin/{model}/")
        assert response.status_code == 200, model


def test_the_admin_never_shows_a_database_password(client, django_user_model, environment):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    database = factories.DatabaseFactory(environment=environment, password="top-secret-pw")
    response = client.get(f"/admin/organizations/database/{database.pk}/change/")
    assert response.status_code == 200
    assert b"top-secret-pw" not in response.content


def test_signing_in_shows_the_organisation_project_and_environment(client, owner, environment):
    response = client.post(reverse("login"), {"username": "owner", "password": "password"})
    assert response.status_code == 302
    page = client.get(reverse("dashboard")).content.decode()
    assert "Quant Gov" in page and "Dashboard" in page and "Staging" in page


def test_tenants_cannot_point_strongbox_outside_their_own_directories(
    client_for, organisation, project, environment, organisation_dir
):
    tmp_path = organisation_dir
    client = client_for(organisation, Role.ADMIN)
    (tmp_path / "inside").mkdir()
    (tmp_path / "escape").symlink_to("/etc")

    bad = client.patch(f"/api/environments/{environment.id}", {"filesPath": "/etc"}, format="json")
    assert bad.status_code == 400
    assert "filesPath" in bad.json()["error"]["fields"]
    via_link = client.patch(
        f"/api/environments/{environment.id}",
        {"filesPath": str(tmp_path / "escape")},
        format="json",
    )
    assert via_link.status_code == 400
    ok = client.patch(
        f"/api/environments/{environment.id}",
        {"filesPath": str(tmp_path / "inside")},
        format="json",
    )
    assert ok.status_code == 200, ok.content

    sqlite = client.post(
        f"/api/environments/{environment.id}/databases",
        {"name": "Stolen", "engine": "sqlite", "databaseName": "/var/lib/secret.db"},
        format="json",
    )
    assert sqlite.status_code == 400
    assert "databaseName" in sqlite.json()["error"]["fields"]

    local = client.post(
        "/api/backup-destinations",
        {"name": "Root", "kind": "local", "parameters": {"path": "/"}},
        format="json",
    )
    assert local.status_code == 400
    assert "parameters.path" in local.json()["error"]["fields"]


def test_databases_named_alike_get_distinct_slugs(client_for, organisation, environment):
    client = client_for(organisation, Role.ADMIN)
    slugs = []
    for _ in range(2):
        response = client.post(
            f"/api/environments/{environment.id}/databases",
            {"name": "½¶", "engine": "postgresql", "databaseName": "app"},
            format="json",
        )
        assert response.status_code == 201, response.content
        slugs.append(response.json()["slug"])
    assert slugs[0] != slugs[1] and all(slugs)
