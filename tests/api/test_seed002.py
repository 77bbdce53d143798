"""Seed 002: GET /v1/database-backups"""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backups.models import BackupStatus
from organizations.models import Role
from tests import factories
from tests.api.shapes import assert_same_shape

SEED_EXAMPLE = {
    "database_backups": [
        {
            "id": "550e8400-e29b-41d4-a716-446655440000",
            "crn": "crn:spo1:database:backup:550e8400-e29b-41d4-a716-446655440000",
            "name": "backup-2024-01-15",
            "description": "string",
            "status": "COMPLETED",
            "instance_id": "550e8400-e29b-41d4-a716-446655440001",
            "parent_id": "550e8400-e29b-41d4-a716-446655440000",
            "size": 0,
            "datastore": {
                "type": "postgresql",
                "version": "15.4",
                "version_id": "550e8400-e29b-41d4-a716-446655440000",
            },
            "location_ref": "string",
            "created_at": "2024-01-15T10:30:00Z",
            "updated_at": "2024-01-15T10:30:00Z",
        }
    ],
    "meta": {
        "total": 150,
        "limit": 20,
        "marker": "550e8400-e29b-41d4-a716-446655440000",
        "has_more": True,
    },
    "links": {
        "self": "https://api.spo1.mycloud.com/v1/instances?limit=20",
        "next": "https://api.spo1.mycloud.com/v1/instances?limit=20&marker=550e8400-e29b-41d4-a716-446655440000",
        "previous": "https://api.spo1.mycloud.com/v1/instances?limit=20&marker=440e8400-e29b-41d4-a716-446655440000",
    },
}

URL = "/v1/database-backups"
T0 = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


@pytest.fixture
def database(environment):
    return factories.DatabaseFactory(environment=environment, engine="postgresql")


def _backups(environment, count, *, database=None, **kwargs):
    # Seed 002 lists backups of a database: each has one.
    database = database or factories.DatabaseFactory(environment=environment)
    return [
        factories.BackupFactory(
            environment=environment,
            database=database,
            created_at=T0 + timedelta(minutes=i),
            **kwargs,
        )
        for i in range(count)
    ]


def test_it_lists_the_organisations_backups_in_the_seed_shape(
    client_for, organisation, environment, destination, settings
):
    settings.STRONGBOX_REGION = "spo1"
    database = factories.DatabaseFactory(environment=environment, engine="postgresql")
    base, incremental, _ = _backups(environment, 3, database=database, status="completed")
    incremental.parent = base
    incremental.save()
    factories.BackupCopyFactory(backup=incremental, destination=destination)
    response = client_for(organisation, Role.VIEWER).get(URL, {"limit": 2})
    assert response.status_code == 200
    body = response.json()
    assert_same_shape(
        body,
        SEED_EXAMPLE,
        nullable=(
            "$.database_backups[].parent_id",
            "$.database_backups[].location_ref",
            "$.links.previous",
        ),
    )
    second = body["database_backups"][1]
    assert second["id"] == str(incremental.id)
    assert second["crn"] == f"crn:spo1:database:backup:{incremental.id}"
    assert second["status"] == "COMPLETED"
    assert second["parent_id"] == str(base.id)
    assert second["instance_id"] == str(database.id)
    assert second["location_ref"].endswith(".pgdump.zst")
    assert body["meta"] == {"total": 3, "limit": 2, "marker": second["id"], "has_more": True}
    assert body["links"]["self"].startswith("http://testserver/v1/database-backups?")
    assert parse_qs(urlparse(body["links"]["next"]).query) == {
        "limit": ["2"],
        "marker": [second["id"]],
    }
    assert body["links"]["previous"] is None


def test_markers_walk_the_list_and_links_go_back(client_for, organisation, environment):
    ids = [str(b.id) for b in _backups(environment, 5)][::-1]
    client = client_for(organisation, Role.VIEWER)
    first = client.get(URL, {"limit": 2}).json()
    second = client.get(first["links"]["next"]).json()
    third = client.get(second["links"]["next"]).json()
    assert [b["id"] for b in first["database_backups"]] == ids[:2]
    assert [b["id"] for b in second["database_backups"]] == ids[2:4]
    assert [b["id"] for b in third["database_backups"]] == ids[4:]
    assert third["meta"]["has_more"] is False
    assert third["links"]["next"] is None
    back = client.get(third["links"]["previous"]).json()
    assert [b["id"] for b in back["database_backups"]] == ids[2:4]
    assert "marker" not in client.get(second["links"]["previous"]).request["QUERY_STRING"]


def test_it_filters_by_name_status_instance_and_datastore(
    client_for, organisation, environment, database
):
    mysql = factories.DatabaseFactory(environment=environment, engine="mysql")
    factories.BackupFactory(environment=environment, name="web-1", engine="mysql", database=mysql)
    factories.BackupFactory(
        environment=environment, name="web-2", status=BackupStatus.FAILED, database=database
    )
    factories.BackupFactory(environment=environment, name="api-1", database=database)
    client = client_for(organisation, Role.VIEWER)

    def names(**params):
        return sorted(b["name"] for b in client.get(URL, params).json()["database_backups"])

    assert names(name="web-*") == ["web-1", "web-2"]
    assert names(name="web-1") == ["web-1"]
    assert names(name="web") == []
    assert names(status="FAILED") == ["web-2"]
    assert names(status="in_progress") == []
    assert names(instance_id=str(mysql.id)) == ["web-1"]
    assert names(datastore_type="mysql") == ["web-1"]
    assert client.get(URL, {"status": "FAILED"}).json()["meta"]["total"] == 1


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"status": "DONE"}, "status"),
        ({"instance_id": "db-1"}, "instance_id"),
        ({"datastore_type": "oracle"}, "datastore_type"),
        ({"limit": "-1"}, "limit"),
        ({"marker": "last"}, "marker"),
        ({"marker": "550e8400-e29b-41d4-a716-446655440000"}, "marker"),
    ],
)
def test_a_bad_query_value_is_a_400_in_the_documented_body(client_for, organisation, params, named):
    response = client_for(organisation, Role.VIEWER).get(URL, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"code", "message"}
    assert named in error["message"]


def test_an_unknown_status_lists_the_upper_case_values(client_for, organisation):
    message = client_for(organisation).get(URL, {"status": "DONE"}).json()["error"]["message"]
    assert "IN_PROGRESS" in message
    assert "NOT_SUPPORTED" in message


def test_the_limit_defaults_to_20_and_is_clamped_to_100(
    client_for, organisation, environment, database
):
    factories.BackupFactory.create_batch(105, environment=environment, database=database)
    client = client_for(organisation, Role.VIEWER)
    assert len(client.get(URL).json()["database_backups"]) == 20
    body = client.get(URL, {"limit": 1000}).json()
    assert body["meta"]["limit"] == 100
    assert len(body["database_backups"]) == 100


def test_another_organisations_backups_are_invisible(
    client_for, organisation, other_organisation, environment, database
):
    backup = factories.BackupFactory(environment=environment, database=database)
    body = client_for(other_organisation).get(URL).json()
    assert body["database_backups"] == []
    response = client_for(other_organisation).get(URL, {"marker": str(backup.id)})
    assert response.status_code == 400


def test_no_token_and_a_bad_token_are_401_in_the_documented_body(api_client, db):
    response = api_client.get(URL)
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message"}
    api_client.credentials(HTTP_AUTHORIZATION="Bearer sbx_revoked")
    assert api_client.get(URL + "/").status_code == 401


def test_a_page_costs_the_same_queries_whatever_its_size(
    client_for, organisation, environment, destination
):
    for backup in _backups(environment, 110):
        factories.BackupCopyFactory(backup=backup, destination=destination)
    client = client_for(organisation, Role.VIEWER)
    client.get(URL)
    counts = []
    for limit in (5, 50):
        first = client.get(URL, {"limit": limit}).json()
        with CaptureQueriesContext(connection) as queries:
            body = client.get(first["links"]["next"]).json()
        assert len(body["database_backups"]) == limit
        counts.append(len(queries))
    assert counts[0] == counts[1]
