"""Bodies and queries are taken exactly as the schema states them (issue 17, the fuzzer's
findings): unknown fields, values of another JSON type and empty typed query values are a
400 naming them; the schema says ``additionalProperties: false`` where the server refuses
other fields."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests import factories


@pytest.fixture
def admin(client_for, organisation):
    return client_for(organisation)


def _fields(response) -> dict:
    assert response.status_code == 400, response.content[:500]
    return response.json()["error"]["fields"]


def test_an_unknown_body_field_is_a_400_naming_it(admin):
    response = admin.post("/api/projects", {"name": "Shop", "colour": "red"}, format="json")
    assert _fields(response) == {"colour": ["Unknown field."]}


def test_an_unknown_field_of_a_partial_update_is_a_400_too(admin, destination):
    response = admin.patch(
        f"/api/backup-destinations/{destination.id}", {"isDefualt": True}, format="json"
    )
    assert "isDefualt" in _fields(response)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Shop", "slug": 0}, "slug"),
        ({"name": 5}, "name"),
    ],
)
def test_a_number_is_not_taken_for_a_string(admin, body, field):
    assert _fields(admin.post("/api/projects", body, format="json")) == {
        field: ["Expected a string."]
    }


def test_zero_is_not_taken_for_false(admin):
    body = {"name": "Disk", "kind": "local", "isDefault": 0}
    assert "isDefault" in _fields(admin.post("/api/backup-destinations", body, format="json"))


def test_a_string_is_not_taken_for_an_integer(admin, environment, organisation):
    body = {
        "name": "Main",
        "engine": "postgresql",
        "host": "127.0.0.1",
        "port": "5432",
        "databaseName": "main",
    }
    response = admin.post(f"/api/environments/{environment.id}/databases", body, format="json")
    assert _fields(response) == {"port": ["Expected an integer."]}


def test_a_nested_problem_is_named_by_its_dotted_path(admin, environment):
    factories.ScheduleFactory(environment=environment)
    body = {"schedules": [{"interval": "hourly", "minute": []}]}
    response = admin.put(f"/api/environments/{environment.id}/backup-schedule", body, format="json")
    assert "schedules.0.minute" in _fields(response)


def test_s3_parameters_are_text_except_the_part_size(admin):
    body = {
        "name": "Offsite",
        "kind": "s3",
        "parameters": {"bucket": 5, "access_key_id": "a", "secret_access_key": "s"},
    }
    response = admin.post("/api/backup-destinations", body, format="json")
    assert _fields(response) == {"parameters.bucket": ["Expected a string."]}


@pytest.mark.parametrize("kind", [{}, [], 3, None, "ftp"])
def test_a_kind_that_is_no_kind_is_a_400_naming_it(admin, kind):
    body = {"name": "Offsite", "kind": kind, "parameters": {}}
    fields = _fields(admin.post("/api/backup-destinations", body, format="json"))
    assert fields == {"kind": ["Must be one of: local, s3."]}


def test_a_missing_required_s3_parameter_is_named(admin):
    body = {"name": "Offsite", "kind": "s3", "parameters": {"bucket": "backups"}}
    fields = _fields(admin.post("/api/backup-destinations", body, format="json"))
    assert {"parameters.access_key_id", "parameters.secret_access_key"} <= set(fields)


def test_an_update_refuses_a_parameter_of_another_kind(admin, destination):
    response = admin.patch(
        f"/api/backup-destinations/{destination.id}",
        {"parameters": {"bucket": "backups"}},
        format="json",
    )
    assert _fields(response) == {"parameters.bucket": ["Unknown field."]}


def test_an_update_still_removes_a_parameter_with_null(admin, organisation):
    destination = factories.DestinationFactory(
        organisation=organisation,
        kind="s3",
        is_default=False,
        config={"bucket": "backups", "prefix": "old"},
        secrets={"access_key_id": "a", "secret_access_key": "s"},
    )
    response = admin.patch(
        f"/api/backup-destinations/{destination.id}",
        {"parameters": {"prefix": None}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["parameters"] == {"bucket": "backups"}


# --- queries ------------------------------------------------------------------------------


@pytest.fixture
def seeded(organisation, environment, destination):
    database = factories.DatabaseFactory(environment=environment)
    backup = factories.BackupFactory(environment=environment, database=database)
    factories.BackupCopyFactory(backup=backup, destination=destination)
    return {"database": database, "backup": backup, "destination": destination}


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/database/{database}/backup", "startId"),
        ("/v1/database-backups", "marker"),
        ("/v1/database-backups", "instance_id"),
        ("/v1/database-backups", "status"),
        ("/v1/backup-destinations/{destination}/backups", "cursor"),
        ("/api/backups/{backup}/progress", "format"),
        ("/api/backups/{backup}/restore/progress", "format"),
    ],
)
def test_an_empty_typed_query_value_is_a_400_naming_it(admin, seeded, url, param):
    url = url.format(**{name: obj.id for name, obj in seeded.items()})
    response = admin.get(url, {param: ""})
    assert response.status_code == 400, response.content[:300]
    assert param in response.content.decode()


def test_an_empty_seed000_token_is_a_400_naming_it(admin, organisation, project, environment):
    url = (
        f"/api/v3/organizations/{organisation.slug}/applications/{project.slug}"
        f"/environments/{environment.slug}/backups/database"
    )
    response = admin.get(url, {"nextToken": ""})
    assert response.status_code == 400
    assert "nextToken" in response.json()["error"]


def test_an_unknown_stream_format_is_a_400_not_a_bare_404(admin, seeded):
    response = admin.get(f"/api/backups/{seeded['backup'].id}/progress", {"format": "xml"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"format": ["Must be one of: json, sse."]}


def test_empty_free_text_and_paging_values_keep_their_meaning(admin, seeded):
    response = admin.get("/v1/database-backups", {"name": "", "limit": ""})
    assert response.status_code == 200, response.content[:300]


@pytest.mark.parametrize(
    "url",
    [
        "/api/audit-events",
        "/api/backup-alerts",
        "/api/backup-destinations",
        "/api/notification-channels",
        "/api/organizations",
        "/api/projects",
    ],
)
def test_an_empty_limit_or_offset_means_the_default_as_the_schema_says(admin, seeded, url):
    response = admin.get(url, {"limit": "", "offset": ""})
    assert response.status_code == 200, response.content[:300]
    assert response.json()["offset"] == 0 and response.json()["limit"] >= 1
    schema = SchemaGenerator().get_schema(request=None, public=True)
    parameters = {p["name"]: p for p in schema["paths"][url]["get"]["parameters"]}
    assert parameters["limit"]["allowEmptyValue"] and parameters["offset"]["allowEmptyValue"]


# --- the schema says so --------------------------------------------------------------------


def test_every_request_body_refuses_other_fields_in_the_schema():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    open_bodies = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                name = media["schema"]["$ref"].split("/")[-1]
                component = components[name]
                variants = [r["$ref"].split("/")[-1] for r in component.get("oneOf", [])]
                for each in variants or [name]:
                    if components[each].get("additionalProperties") is not False:
                        open_bodies.append(f"{method.upper()} {path}: {each}")
    assert open_bodies == []
