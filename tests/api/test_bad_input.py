"""Bad input is a 4xx in each dialect's documented error body, never a 500 (issue 17)."""

import json

import pytest
from django.conf import settings

from organizations.models import Role
from tests import factories

pytestmark = pytest.mark.django_db

SEED000 = (
    "/api/v3/organizations/quant-gov/applications/dashboard/environments/staging/backups/database"
)
SEED002 = "/v1/database-backups"
TOKEN = "/api/auth/token"

HUGE = str(2**63)


def seed000_error(body: dict) -> str:
    """Seed 000's error body: ``{"error": "<message>"}``."""
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    return body["error"]


def seed002_error(body: dict) -> str:
    """Seed 002: ``{"error": {"code", "message"}}``."""
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]["message"]


def default_error(body: dict) -> str:
    """Seed 001, 003, 004 and our own resources: ``{"error": {"code", "message", "fields"?}}``."""
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    assert set(body["error"]) <= {"code", "message", "fields"}, body
    return body["error"]["message"]


@pytest.fixture
def database(environment):
    return factories.DatabaseFactory(environment=environment, engine="postgresql")


@pytest.fixture
def viewer(client_for, organisation):
    return client_for(organisation, Role.VIEWER)


def _lists(environment, destination, database):
    """(url, paging parameter, error body reader) of every list that pages by number or offset."""
    return [
        (f"/v1/backup-destinations/{destination.id}/backups", "page", default_error),
        (f"/database/{database.id}/backup", "page", default_error),
        (f"/api/environments/{environment.id}/backups", "offset", default_error),
        (f"/api/projects/{environment.project_id}/backups", "offset", default_error),
        ("/api/backup-alerts", "offset", default_error),
        ("/api/organizations", "offset", default_error),
    ]


@pytest.mark.parametrize("value", [HUGE, str(10**9 + 1), "-1", "ten", "1.5"])
def test_a_page_or_offset_out_of_range_is_a_400_naming_it(
    viewer, environment, destination, database, value
):
    for url, param, error_of in _lists(environment, destination, database):
        response = viewer.get(url, {param: value})
        assert response.status_code == 400, (url, response.content[:300])
        assert param in error_of(response.json()), url


def test_the_deepest_page_and_offset_allowed_are_an_empty_page(
    viewer, environment, destination, database
):
    for url, param, _ in _lists(environment, destination, database):
        response = viewer.get(url, {param: str(10**9)})
        assert response.status_code == 200, (url, response.content[:300])


@pytest.mark.parametrize("value", [HUGE, "-1", ""])
def test_a_huge_negative_or_empty_page_size_is_clamped_or_a_400(
    viewer, environment, destination, database, value
):
    sizes = [
        (SEED000, "limit", seed000_error),
        (f"/v1/backup-destinations/{destination.id}/backups", "per_page", default_error),
        (SEED002, "limit", seed002_error),
        (f"/database/{database.id}/backup", "page_size", default_error),
        (f"/api/environments/{environment.id}/backups", "limit", default_error),
    ]
    for url, param, error_of in sizes:
        response = viewer.get(url, {param: value})
        # Huge is clamped to the maximum, empty means the default: both documented.
        if value in (HUGE, ""):
            assert response.status_code == 200, (url, response.content[:300])
        else:
            assert response.status_code == 400, (url, response.content[:300])
            assert param in error_of(response.json()), url


def test_the_schema_bounds_pages_and_offsets(api_client, db):
    schema = api_client.get("/api/schema/", {"format": "json"})
    if schema.status_code == 404:
        pytest.skip("the schema is not served")
    paths = schema.json()["paths"]
    bounded = [
        parameter["schema"]
        for operation in (paths[p].get("get", {}) for p in paths)
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query" and parameter["name"] in {"page", "offset"}
    ]
    assert bounded
    assert all(s.get("maximum") == 10**9 for s in bounded), bounded


def _nested(depth: int) -> str:
    return '{"options": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("depth", [65, 10_000, 100_000])
def test_json_nested_too_deep_is_a_400(client_for, organisation, database, api_client, depth):
    response = client_for(organisation).patch(
        f"/api/databases/{database.id}", _nested(depth), content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    assert "nested" in default_error(response.json())

    token = api_client.post(TOKEN, _nested(depth), content_type="application/json")
    assert token.status_code == 400, token.content[:300]
    assert "nested" in default_error(token.json())


def test_json_nested_a_little_is_parsed(client_for, organisation, database):
    options = {"a": [[[{"b": [1]}]]]}
    response = client_for(organisation).patch(
        f"/api/databases/{database.id}", {"options": options}, format="json"
    )
    assert response.status_code != 500
    assert "nested" not in response.content.decode()


def _too_big() -> str:
    return json.dumps({"username": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE, "password": "p"})


def test_a_body_over_the_upload_limit_is_a_413(client_for, organisation, database, api_client):
    response = client_for(organisation).patch(
        f"/api/databases/{database.id}", _too_big(), content_type="application/json"
    )
    assert response.status_code == 413, response.content[:300]
    assert "larger than the limit" in default_error(response.json())

    token = api_client.post(TOKEN, _too_big(), content_type="application/json")
    assert token.status_code == 413, token.content[:300]
    assert "larger than the limit" in default_error(token.json())

    form = api_client.post(
        TOKEN,
        "username=" + "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        content_type="application/x-www-form-urlencoded",
    )
    assert form.status_code == 413, form.content[:300]
    assert "larger than the limit" in default_error(form.json())


def test_nul_characters_are_refused_in_each_dialects_error_body(
    viewer, environment, destination, database
):
    for url, error_of in [
        (SEED000 + "?nextToken=a%00b", seed000_error),
        (SEED002 + "?name=a%00b", seed002_error),
        (f"/v1/backup-destinations/{destination.id}/backups?cursor=%00", default_error),
        (f"/database/{database.id}/backup?startId=%00", default_error),
        (f"/api/environments/{environment.id}/backups?status=%00", default_error),
        ("/v1/backup-destinations/a%00b/backups", default_error),
    ]:
        response = viewer.get(url)
        assert response.status_code == 400, (url, response.content[:300])
        assert "NUL" in error_of(response.json()), url
