"""Seed 001: GET /v1/backup-destinations/{backupDestinationId}/backups"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backups.models import Backup
from organizations.models import Role
from tests import factories
from tests.api.shapes import assert_same_shape

# The seed's example. Its expiredBy is written as a string there although the field is
# documented as a number; Strongbox serves the documented number.
SEED_EXAMPLE = {
    "data": [
        {
            "id": "example-backup",
            "name": "Example Backup",
            "status": "completed",
            "project": {"id": "example-project", "name": "Example Project"},
            "addon": {"id": "example-addon", "name": "Example Addon"},
            "config": {
                "addonVersion": "4.4.8",
                "addonType": "mongodb",
                "source": {"type": "global"},
                "size": "1234",
            },
            "schedules": [{"interval": "weekly", "minute": [30], "hour": [18], "day": [4]}],
            "expiredBy": 1729232400000.0,
            "createdAt": "2021-01-20T11:19:53.175Z",
            "completedAt": "2021-01-20T11:19:54.494Z",
        }
    ],
    "pagination": {"hasNextPage": False, "count": 1},
}

T0 = datetime(2021, 1, 20, 11, 19, 53, 175000, tzinfo=UTC)


def url(destination) -> str:
    return f"/v1/backup-destinations/{destination.id}/backups"


def _stored(destination, environment, *, minutes=0, **kwargs):
    backup = factories.BackupFactory(
        environment=environment, created_at=T0 + timedelta(minutes=minutes), **kwargs
    )
    factories.BackupCopyFactory(backup=backup, destination=destination)
    return backup


def test_it_lists_the_destinations_backups_in_the_seed_shape(
    client_for, organisation, environment, destination
):
    database = factories.DatabaseFactory(environment=environment, name="Example Addon")
    _stored(
        destination,
        environment,
        name="Example Backup",
        database=database,
        engine="mongodb",
        engine_version="4.4.8",
        size=1234,
        schedule_rules=[{"interval": "weekly", "minute": [30], "hour": [18], "day": [4]}],
        expires_at=datetime(2024, 10, 18, 6, 20, tzinfo=UTC),
        completed_at=T0 + timedelta(seconds=1.319),
    )
    response = client_for(organisation, Role.VIEWER).get(url(destination))
    assert response.status_code == 200
    body = response.json()
    assert_same_shape(body, SEED_EXAMPLE)
    item = body["data"][0]
    assert item["config"] == {
        "addonVersion": "4.4.8",
        "addonType": "mongodb",
        "source": {"type": "global"},
        "size": "1234",
    }
    assert item["addon"] == {"id": str(database.id), "name": "Example Addon"}
    assert item["expiredBy"] == 1729232400000.0
    assert item["createdAt"] == "2021-01-20T11:19:53.175Z"
    assert item["completedAt"] == "2021-01-20T11:19:54.494Z"
    assert body["pagination"] == {"hasNextPage": False, "count": 1}


def test_it_lists_only_backups_with_a_copy_in_that_destination(
    client_for, organisation, environment, destination
):
    elsewhere = factories.DestinationFactory(organisation=organisation, name="Other")
    _stored(destination, environment)
    _stored(elsewhere, environment)
    factories.BackupFactory(environment=environment)
    body = client_for(organisation, Role.VIEWER).get(url(destination)).json()
    assert body["pagination"]["count"] == 1


def test_it_pages_by_number_and_by_cursor(client_for, organisation, environment, destination):
    names = [_stored(destination, environment, minutes=i).name for i in range(5)][::-1]
    client = client_for(organisation, Role.VIEWER)
    first = client.get(url(destination), {"per_page": 2}).json()
    assert [b["name"] for b in first["data"]] == names[:2]
    assert first["pagination"]["hasNextPage"] is True
    second = client.get(url(destination), {"per_page": 2, "page": 2}).json()
    assert [b["name"] for b in second["data"]] == names[2:4]
    by_cursor = client.get(
        url(destination), {"per_page": 2, "page": 3, "cursor": first["pagination"]["cursor"]}
    ).json()
    assert [b["name"] for b in by_cursor["data"]] == names[2:4], "the cursor wins over page"
    last = client.get(url(destination), {"per_page": 2, "page": 3}).json()
    assert last["pagination"] == {"hasNextPage": False, "count": 1}


def test_page_numbers_and_the_cursor_walk_the_same_backups_in_the_same_order(
    client_for, organisation, environment, destination
):
    elsewhere = factories.DestinationFactory(organisation=organisation, name="Other")
    for i in range(12):
        # Three backups a minute: ties on createdAt are ordered by id.
        _stored(destination, environment, minutes=i // 3)
        _stored(elsewhere, environment, minutes=i // 3)
    factories.BackupFactory(environment=environment, created_at=T0)
    newest_first = Backup.objects.filter(copies__destination=destination).order_by(
        "-created_at", "-id"
    )
    expected = [str(pk) for pk in newest_first.values_list("id", flat=True)]
    client = client_for(organisation, Role.VIEWER)

    by_number = []
    for page in range(1, 5):
        body = client.get(url(destination), {"per_page": 5, "page": page}).json()
        by_number.append([b["id"] for b in body["data"]])
    by_cursor, query = [], {"per_page": 5}
    while True:
        body = client.get(url(destination), query).json()
        by_cursor.append([b["id"] for b in body["data"]])
        if not body["pagination"]["hasNextPage"]:
            break
        query = {"per_page": 5, "cursor": body["pagination"]["cursor"]}

    assert [len(page) for page in by_number] == [5, 5, 2, 0]
    assert by_cursor == by_number[:3]
    assert sum(by_number, []) == expected


def test_per_page_is_clamped_to_100(client_for, organisation, environment, destination):
    for i in range(102):
        _stored(destination, environment, minutes=i)
    body = client_for(organisation, Role.VIEWER).get(url(destination), {"per_page": 1000}).json()
    assert body["pagination"]["count"] == 100
    assert body["pagination"]["hasNextPage"] is True


@pytest.mark.parametrize(
    ("params", "named"),
    [({"per_page": "x"}, "per_page"), ({"page": "0"}, "page"), ({"cursor": "@@"}, "cursor")],
)
def test_a_bad_query_value_is_a_400_naming_the_parameter(
    client_for, organisation, destination, params, named
):
    response = client_for(organisation, Role.VIEWER).get(url(destination), params)
    assert response.status_code == 400
    assert named in response.json()["error"]["message"]


def test_another_organisations_destination_is_a_404(client_for, other_organisation, destination):
    assert client_for(other_organisation).get(url(destination)).status_code == 404


def test_an_unknown_or_malformed_destination_is_a_404(client_for, organisation):
    client = client_for(organisation)
    assert client.get("/v1/backup-destinations/nope/backups").status_code == 404
    unknown = "/v1/backup-destinations/3c90c3cc-0d44-4b50-8888-8dd25736052a/backups/"
    assert client.get(unknown).status_code == 404


def test_no_token_and_a_bad_token_are_401(api_client, destination):
    assert api_client.get(url(destination)).status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert api_client.get(url(destination)).status_code == 401


def test_a_page_costs_the_same_queries_whatever_its_size(
    client_for, organisation, environment, destination
):
    database = factories.DatabaseFactory(environment=environment)
    for i in range(60):
        _stored(destination, environment, minutes=i, database=database)
    client = client_for(organisation, Role.VIEWER)
    client.get(url(destination))
    counts = []
    for per_page in (5, 50):
        with CaptureQueriesContext(connection) as queries:
            body = client.get(url(destination), {"per_page": per_page}).json()
        assert body["pagination"]["count"] == per_page
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_expired_by_follows_a_retention_change_for_every_databases_backups(
    client_for, organisation, environment, destination
):
    factories.ScheduleFactory(environment=environment)
    night = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    made = {}
    for minute, name in enumerate(("Users DB", "Orders DB")):
        database = factories.DatabaseFactory(environment=environment, name=name)
        made[name] = []
        for day in range(10):
            backup = factories.BackupFactory(
                environment=environment,
                database=database,
                trigger="scheduled",
                created_at=night - timedelta(days=day) + timedelta(minutes=minute),
            )
            factories.BackupCopyFactory(backup=backup, destination=destination)
            made[name].append(backup)
    before = datetime.now(UTC)

    # Seed 003's PUT changes the policy; seed 001 shows the new estimates at once.
    response = client_for(organisation, Role.ADMIN).put(
        f"/api/environments/{environment.id}/backup-schedule",
        {"retainDailyDays": 7},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = client_for(organisation, Role.VIEWER).get(url(destination), {"per_page": 100}).json()

    expired_by = {b["id"]: b["expiredBy"] for b in body["data"]}
    for name, backups in made.items():
        # Each database's own last week stays for 7 days from its creation...
        for backup in backups[:7]:
            expected = (backup.created_at + timedelta(days=7)).timestamp() * 1000
            assert expired_by[str(backup.id)] == expected, name
        # ...and its older backups are due now.
        for backup in backups[7:]:
            assert expired_by[str(backup.id)] >= before.timestamp() * 1000, name
