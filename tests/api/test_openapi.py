"""The OpenAPI document: valid, complete, offline docs pages, and a schema fuzz run."""

import re
from html.parser import HTMLParser

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from organizations.models import Role
from tests import factories
from tests.api.test_auth_matrix import ENDPOINTS

SEED000_TO_004 = {
    "/api/v3/organizations/{organisation}/applications/{application}/environments/{environment}"
    "/backups/{type}",
    "/v1/backup-destinations/{backupDestinationId}/backups",
    "/v1/database-backups",
    "/database/{databaseId}/backup",
}
# API.md's placeholders, as the auth matrix fills them.
PLACEHOLDERS = {
    "{project}": "{projectId}",
    "{empty_project}": "{projectId}",
    "{environment}": "{env_id}",
    "{empty_environment}": "{env_id}",
    "{database}": "{databaseId}",
    "{spare_database}": "{databaseId}",
    "{destination}": "{id}",
    "{spare_destination}": "{id}",
    "{backup}": "{id}",
    "{restore}": "{id}",
    "{alert}": "{id}",
    "{organization}": "{id}",
}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _documented(endpoint) -> tuple[str, str]:
    path = endpoint.path
    if path.startswith("/api/v3/"):
        return endpoint.method, sorted(p for p in SEED000_TO_004 if p.startswith("/api/v3/"))[0]
    if path.startswith("/v1/backup-destinations/"):
        return endpoint.method, "/v1/backup-destinations/{backupDestinationId}/backups"
    if path.startswith("/database/"):
        return endpoint.method, "/database/{databaseId}/backup"
    for placeholder, name in PLACEHOLDERS.items():
        path = path.replace(placeholder, name)
    if path.endswith("/restore-logs"):
        path = path.replace("{env_id}", "{environmentId}")
    if "/backup-destinations/" in path or path.startswith("/api/backups/{"):
        path = path.replace("{projectId}", "{id}")
    return endpoint.method, path


def _operations(schema) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_the_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert yaml.safe_load(target.read_text())["openapi"].startswith("3.")


def test_every_api_md_endpoint_is_in_the_schema(schema):
    operations = _operations(schema)
    missing = [
        f"{method} {path}"
        for method, path in map(_documented, ENDPOINTS)
        if (method, path) not in operations
    ]
    assert missing == []
    assert ("POST", "/api/auth/token") in operations


def test_the_schema_has_nothing_beyond_api_md(schema):
    documented = {_documented(e) for e in ENDPOINTS} | {("POST", "/api/auth/token")}
    assert _operations(schema) - documented == set()


def test_paths_appear_exactly_as_documented(schema):
    documented = {p for _, p in map(_documented, ENDPOINTS)} | {"/api/auth/token"}
    assert documented == set(schema["paths"])


def test_every_operation_documents_its_errors_and_security(schema):
    problems = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if path == "/api/auth/token":
                continue
            responses = operation["responses"]
            if "401" not in responses:
                problems.append(f"{method} {path}: no 401")
            if not any(code.startswith("2") for code in responses):
                problems.append(f"{method} {path}: no success status")
            if not operation.get("security"):
                problems.append(f"{method} {path}: no security")
            if "{" in path and "404" not in responses:
                problems.append(f"{method} {path}: no 404")
    assert problems == []


def test_seed_003_operations_document_their_parameters(schema):
    def params(path, method="get"):
        return {p["name"] for p in schema["paths"][path][method].get("parameters", [])}

    assert {"include_dismissed", "limit"} <= params("/api/backup-alerts")
    assert {"env_id", "status", "type", "limit", "offset"} <= params(
        "/api/environments/{env_id}/backups"
    )
    assert {"projectId", "status", "limit", "offset"} <= params("/api/projects/{projectId}/backups")
    restore = schema["paths"]["/api/backups/{id}/restore"]["post"]
    body = restore["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    fields = schema["components"]["schemas"][body]["properties"]
    assert {"backupId", "targetType", "targetEnvironmentId", "pitrTimestamp"} <= set(fields)
    assert {"202", "409", "422"} <= set(restore["responses"])
    schedule_body = schema["paths"]["/api/environments/{env_id}/backup-schedule"]["put"]
    ref = schedule_body["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    fields = schema["components"]["schemas"][ref.split("/")[-1]]["properties"]
    assert {"dbCron", "walEnabled", "walRetentionDays", "retainDbMonthly", "schedules"} <= set(
        fields
    )
    progress = schema["paths"]["/api/backups/{id}/progress"]["get"]["responses"]["200"]
    assert "text/event-stream" in progress["content"]


def test_component_names_are_unique_and_prefixed(schema):
    names = list(schema["components"]["schemas"])
    assert len(names) == len(set(names))
    assert "Seed003Backup" in names and "Seed003Error" in names
    assert not [n for n in names if re.search(r"[0-9a-f]{3}Enum$", n)]  # no hashed names


# --- Swagger UI and Redoc, offline -------------------------------------------------------------


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in {"src", "href"} and value:
                self.urls.append(value)


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_docs_pages_load_only_local_assets(page):
    response = Client().get(page)
    assert response.status_code == 200
    html = response.content.decode()
    parser = _Assets()
    parser.feed(html)
    assert parser.urls
    external = [u for u in parser.urls if re.match(r"^(https?:)?//", u)]
    assert external == []
    assert not re.search(r"https?://(cdn|unpkg|fonts)\.", html)
    for url in parser.urls:
        if url.startswith("/static/"):
            assert finders.find(url.removeprefix("/static/")), url


@pytest.mark.django_db
def test_the_schema_endpoint_serves_the_document():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/environments/{env_id}/backups" in response.json()["paths"]


# --- schemathesis ---------------------------------------------------------------------------


# Path parameters that name real objects of the seeded organisation, so generated
# bodies and queries reach the code behind the 404 as well.
REAL_IDS = {
    "projectId": "project",
    "env_id": "environment",
    "environmentId": "environment",
    "databaseId": "database",
    "backupDestinationId": "destination",
}
ID_BY_PREFIX = [
    ("/api/backup-alerts/", "alert"),
    ("/api/backup-destinations/", "destination"),
    ("/api/backups/", "backup"),
    ("/api/restores/", "restore"),
]
# Changing a destination's directory and then testing it would write wherever the
# fuzzer points (the test runs as root): those cases use generated ids only.
NEVER_REAL = {("PATCH", "/api/backup-destinations/{id}")}


@pytest.fixture
def seeded(organisation, project, environment, destination):
    database = factories.DatabaseFactory(environment=environment, name="Main", slug="main")
    backup = factories.BackupFactory(environment=environment, database=database)
    factories.BackupCopyFactory(backup=backup, destination=destination)
    return {
        "organisation": organisation.slug,
        "application": project.slug,
        "environment_slug": environment.slug,
        "project": str(project.id),
        "environment": str(environment.id),
        "database": str(database.id),
        "destination": str(destination.id),
        "backup": str(backup.id),
        "restore": str(factories.RestoreFactory(backup=backup, status="completed").id),
        "alert": str(factories.AlertFactory(organisation=organisation).id),
    }


def _real_path_parameters(operation, seeded) -> dict | None:
    if (operation.method.upper(), operation.path) in NEVER_REAL:
        return None
    names = [p.name for p in operation.path_parameters]
    if not names:
        return None
    values = {}
    for name in names:
        if name in REAL_IDS:
            values[name] = seeded[REAL_IDS[name]]
        elif name == "id":
            key = next((k for prefix, k in ID_BY_PREFIX if operation.path.startswith(prefix)), None)
            if key is None:
                return None
            values[name] = seeded[key]
        elif name in ("organisation", "application"):
            values[name] = seeded[name]
        elif name == "environment":
            values[name] = seeded["environment_slug"]
        elif name == "type":
            values[name] = "database"
    return values


@pytest.fixture
def connections_kept_open():
    """Like Django's test client: a request must not close the test's DB connection."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.usefixtures("connections_kept_open")
def test_schemathesis_finds_no_server_errors_and_no_schema_violations(
    seeded, organisation, token_for, django_capture_on_commit_callbacks
):
    import schemathesis
    from django.core.wsgi import get_wsgi_application
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    headers = {"Authorization": f"Bearer {token_for(organisation, Role.ADMIN)}"}
    api = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    failures = []

    def run(operation, strategy, *, negative=False):
        @settings(
            max_examples=4 if negative else 8,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def check(case):
            with django_capture_on_commit_callbacks(execute=False):
                response = case.call(headers=headers)
            assert response.status_code < 500, (
                case.path,
                case.body,
                response.text[:500],
            )
            if negative:
                return  # schema-invalid input: any 4xx will do, the point is no 5xx
            # Schema-valid input may still be refused for what a schema cannot say (a
            # timezone that does not exist, an environment without databases): a 4xx
            # naming the field is right there, so positive_data_acceptance is left out;
            # not_a_server_error is the assertion above.
            case.validate_response(
                response,
                headers=headers,
                excluded_checks=[positive_data_acceptance, not_a_server_error],
            )

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect, try every operation
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:1500])

    for result in api.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/auth/token":
            continue
        run(operation, operation.as_strategy())
        real = _real_path_parameters(operation, seeded)
        if real:
            run(operation, operation.as_strategy(path_parameters=real))
            if operation.body:
                negative = operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=real)
                run(operation, negative, negative=True)
    assert failures == [], "\n\n".join(failures)
