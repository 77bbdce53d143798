"""Every endpoint of API.md (all dialects) × who calls it.

For each endpoint: no token → 401, a bad token → 401, another organisation's
object → 404, a role one step too low → 403, the least role it needs → 2xx (501
for the endpoints that are documented as not implemented yet).
"""

from dataclasses import dataclass, field

import pytest

from organizations.models import Role
from tests import factories
from tests.fixtures.tenants import DEFAULT_SLUG, tenant_root

pytestmark = pytest.mark.django_db

VIEWER, OPERATOR, ADMIN = Role.VIEWER, Role.OPERATOR, Role.ADMIN
BELOW = {OPERATOR: VIEWER, ADMIN: OPERATOR}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # API.md's path with {placeholders} filled from the ``world`` fixture
    role: str = VIEWER
    body: dict | None = None
    ok: tuple[int, ...] = (200,)
    # False when the path names no object (nothing of another organisation to ask for).
    scoped: bool = True
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


# Inside the organisation's own directory, as a SQLite path must be.
NEW_SQLITE = str(tenant_root() / DEFAULT_SLUG / "new.sqlite3")

ENDPOINTS = [
    # --- Strongbox's own resources ---
    Endpoint("GET", "/api/organizations", scoped=False),
    Endpoint("GET", "/api/projects", scoped=False),
    Endpoint("POST", "/api/projects", ADMIN, {"name": "New"}, (201,), scoped=False),
    Endpoint("GET", "/api/projects/{project}"),
    Endpoint("PATCH", "/api/projects/{project}", ADMIN, {"name": "Renamed"}),
    Endpoint("DELETE", "/api/projects/{empty_project}", ADMIN, ok=(204,)),
    Endpoint("GET", "/api/projects/{project}/environments"),
    Endpoint("POST", "/api/projects/{project}/environments", ADMIN, {"name": "New"}, (201,)),
    Endpoint("GET", "/api/environments/{environment}"),
    Endpoint("PATCH", "/api/environments/{environment}", ADMIN, {"name": "Renamed"}),
    Endpoint("DELETE", "/api/environments/{empty_environment}", ADMIN, ok=(204,)),
    Endpoint("GET", "/api/environments/{environment}/databases"),
    Endpoint(
        "POST",
        "/api/environments/{environment}/databases",
        ADMIN,
        {"name": "New", "engine": "sqlite", "databaseName": NEW_SQLITE},
        (201,),
    ),
    Endpoint("GET", "/api/databases/{database}"),
    Endpoint("PATCH", "/api/databases/{database}", ADMIN, {"password": "new"}),
    Endpoint("DELETE", "/api/databases/{spare_database}", ADMIN, ok=(204,)),
    Endpoint("GET", "/api/backup-destinations", scoped=False),
    Endpoint(
        "POST", "/api/backup-destinations", ADMIN, {"name": "New", "kind": "local"}, (201,), False
    ),
    Endpoint("GET", "/api/backup-destinations/{destination}"),
    Endpoint("PATCH", "/api/backup-destinations/{destination}", ADMIN, {"name": "Renamed"}),
    Endpoint("DELETE", "/api/backup-destinations/{spare_destination}", ADMIN, ok=(204,)),
    Endpoint("POST", "/api/backup-destinations/{destination}/test", ADMIN),
    Endpoint("GET", "/api/notification-channels", ADMIN, scoped=False),
    Endpoint(
        "POST",
        "/api/notification-channels",
        ADMIN,
        {"name": "Ops", "kind": "email", "recipients": ["ops@example.com"]},
        (201,),
        False,
    ),
    Endpoint("GET", "/api/notification-channels/{channel}", ADMIN),
    Endpoint("PATCH", "/api/notification-channels/{channel}", ADMIN, {"name": "Renamed"}),
    Endpoint("DELETE", "/api/notification-channels/{spare_channel}", ADMIN, ok=(204,)),
    Endpoint("POST", "/api/notification-channels/{channel}/test", ADMIN),
    Endpoint("GET", "/api/databases/{database}/drills"),
    Endpoint("POST", "/api/databases/{database}/drills", OPERATOR, {}, (202,)),
    Endpoint("GET", "/api/databases/{database}/drill-policy"),
    Endpoint("PUT", "/api/databases/{database}/drill-policy", ADMIN, {"enabled": True}),
    Endpoint("GET", "/api/restores/{restore}"),
    Endpoint("GET", "/api/restores/{restore}/progress"),
    Endpoint("GET", "/api/organizations/{organization}/encryption", ADMIN),
    Endpoint("PATCH", "/api/organizations/{organization}/encryption", ADMIN, {"recipients": []}),
    Endpoint(
        "GET", "/api/organizations/{organization}/evidence", ADMIN, params={"month": "2026-11"}
    ),
    # --- seed 003 ---
    Endpoint("GET", "/api/audit-events", ADMIN, scoped=False, params={"action": "backup.*"}),
    Endpoint("GET", "/api/backup-alerts", scoped=False, params={"include_dismissed": "true"}),
    Endpoint("GET", "/api/backup-alerts/count", scoped=False),
    Endpoint("POST", "/api/backup-alerts/{alert}/dismiss", OPERATOR),
    Endpoint("POST", "/api/backup-alerts/{alert}/read", OPERATOR),
    Endpoint("GET", "/api/backups/cron-presets", scoped=False),
    Endpoint("GET", "/api/backups/{backup}"),
    Endpoint("DELETE", "/api/backups/{backup}", ADMIN, ok=(202,)),
    Endpoint("GET", "/api/backups/{backup}/progress"),
    # The factory's copy has no artifact: past the role check, the download says so (409).
    Endpoint("GET", "/api/backups/{backup}/download", ADMIN, ok=(409,)),
    Endpoint("POST", "/api/backups/{backup}/restore", OPERATOR, {"targetType": "same"}, (202,)),
    Endpoint("POST", "/api/backups/{backup}/restore-plan", OPERATOR, {"targetType": "same"}),
    Endpoint("GET", "/api/backups/{backup}/restore/progress"),
    Endpoint("GET", "/api/environments/{environment}/backup-schedule"),
    Endpoint(
        "PUT", "/api/environments/{environment}/backup-schedule", ADMIN, {"dbCron": "0 3 * * *"}
    ),
    Endpoint(
        "POST",
        "/api/environments/{environment}/backup-schedule/retention-preview",
        VIEWER,
        {"retainDaily": 7},
    ),
    Endpoint("GET", "/api/environments/{environment}/backups", params={"type": "db"}),
    Endpoint("POST", "/api/environments/{environment}/backups", OPERATOR, {"type": "db"}, (202,)),
    Endpoint("GET", "/api/environments/{environment}/pitr"),
    Endpoint("GET", "/api/environments/{environment}/restore-logs"),
    Endpoint("GET", "/api/projects/{project}/backups", params={"status": "completed"}),
    # --- seeds 000, 001, 002, 004 ---
    Endpoint(
        "GET",
        "/api/v3/organizations/{org_slug}/applications/{project_slug}/environments/{env_slug}"
        "/backups/database",
    ),
    Endpoint("GET", "/v1/backup-destinations/{destination}/backups"),
    Endpoint("GET", "/v1/database-backups", scoped=False),
    Endpoint("GET", "/database/{database}/backup"),
]


@pytest.fixture
def world(organisation, project, environment, destination):
    """One of everything in the organisation, so every path has an object to name."""
    database = factories.DatabaseFactory(environment=environment, name="Main", slug="main")
    backup = factories.BackupFactory(environment=environment, database=database, engine="sqlite")
    factories.BackupCopyFactory(backup=backup, destination=destination)
    restore = factories.RestoreFactory(backup=backup, status="completed")
    factories.ScheduleFactory(environment=environment)
    alert = factories.AlertFactory(organisation=organisation, environment=environment)
    empty_project = factories.ProjectFactory(organisation=organisation)
    return {
        "project": project.id,
        "environment": environment.id,
        "database": database.id,
        "destination": destination.id,
        "backup": backup.id,
        "restore": restore.id,
        "alert": alert.id,
        "empty_project": empty_project.id,
        "empty_environment": factories.EnvironmentFactory(project=project).id,
        "spare_database": factories.DatabaseFactory(environment=environment).id,
        "spare_destination": factories.DestinationFactory(organisation=organisation).id,
        # A test message to a closed loopback port: a failed delivery, answered 200.
        "channel": factories.NotificationChannelFactory(organisation=organisation).id,
        "spare_channel": factories.NotificationChannelFactory(organisation=organisation).id,
        "organization": organisation.id,
        "org_slug": organisation.slug,
        "project_slug": project.slug,
        "env_slug": environment.slug,
    }


def call(client, endpoint: Endpoint, world: dict):
    path = endpoint.path.format(**world)
    method = getattr(client, endpoint.method.lower())
    if endpoint.method == "GET":
        return method(path, endpoint.params)
    return method(path, endpoint.body or {}, format="json")


def _ids(endpoints):
    return [str(e) for e in endpoints]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids(ENDPOINTS))
def test_no_token_is_a_401(api_client, world, endpoint):
    response = call(api_client, endpoint, world)
    assert response.status_code == 401, response.content
    assert response.json()["error"]  # each dialect in its own error body


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids(ENDPOINTS))
@pytest.mark.parametrize("token", ["sbx_revoked-or-made-up", "eyJhbGciOiJIUzI1NiJ9.e30.bad"])
def test_a_bad_token_is_a_401(api_client, world, endpoint, token):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = call(api_client, endpoint, world)
    assert response.status_code == 401, response.content


SCOPED = [e for e in ENDPOINTS if e.scoped]


@pytest.mark.parametrize("endpoint", SCOPED, ids=_ids(SCOPED))
def test_another_organisations_object_is_a_404(client_for, other_organisation, world, endpoint):
    response = call(client_for(other_organisation, ADMIN), endpoint, world)
    assert response.status_code == 404, response.content


RESTRICTED = [e for e in ENDPOINTS if e.role != VIEWER]


@pytest.mark.parametrize("endpoint", RESTRICTED, ids=_ids(RESTRICTED))
def test_a_role_too_low_is_a_403(client_for, organisation, world, endpoint):
    response = call(client_for(organisation, BELOW[endpoint.role]), endpoint, world)
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids(ENDPOINTS))
def test_the_least_role_needed_succeeds(
    client_for, organisation, world, endpoint, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # no worker in these tests
        response = call(client_for(organisation, endpoint.role), endpoint, world)
    assert response.status_code in endpoint.ok, response.content


def test_a_session_user_acts_with_their_membership_role(api_client, viewer, world):
    api_client.force_login(viewer)
    assert api_client.get(f"/api/backups/{world['backup']}").status_code == 200
    response = api_client.delete(f"/api/backups/{world['backup']}")
    assert response.status_code in (403, 401)  # a session without CSRF is refused as well


def test_the_token_endpoint_refuses_bad_credentials(api_client, owner):
    response = api_client.post(
        "/api/auth/token", {"username": "owner", "password": "wrong"}, format="json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"
