"""The OpenAPI document: valid, complete, and offline docs pages."""

import re
from html.parser import HTMLParser

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

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
    "{channel}": "{id}",
    "{spare_channel}": "{id}",
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


# The schemathesis run over every operation is tests/api/test_fuzz_schema.py (a live server).
