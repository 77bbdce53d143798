"""Seed 004: GET /database/{databaseId}/backup"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backups.models import BackupStatus
from organizations.models import Role
from tests import factories
from tests.api.shapes import assert_same_shape

SEED_EXAMPLE = {
    "page": 1,
    "page_size": 20,
    "results": [
        {
            "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
            "created_at": "2023-11-07T05:31:56Z",
            "name": "<string>",
            "message": "<string>",
            "updated_at": "2023-11-07T05:31:56Z",
            "status": {
                "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
                "state": "BUILDING",
                "service_deployment_status": "NEVER_DEPLOYED",
                "is_part_last_deployment": True,
                "status_details": {"action": "DEPLOY", "status": "QUEUED", "sub_action": "NONE"},
                "deployment_request_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
                "deployment_requests_count": 123,
                "last_deployment_date": "2023-11-07T05:31:56Z",
                "steps": {
                    "total_duration_sec": 123,
                    "total_computing_duration_sec": 123,
                    "details": [
                        {
                            "step_name": "REGISTRY_CREATE_REPOSITORY",
                            "status": "SUCCESS",
                            "duration_sec": 123,
                        }
                    ],
                },
                "execution_id": "<string>",
            },
        }
    ],
}

T0 = datetime(2023, 11, 7, 5, 31, 56, tzinfo=UTC)
PHASES = [
    {
        "name": "DUMP",
        "status": "SUCCESS",
        "started_at": "2023-11-07T05:31:57+00:00",
        "finished_at": "2023-11-07T05:32:58+00:00",
        "duration_sec": 61.0,
    },
    {
        "name": "UPLOAD",
        "status": "SUCCESS",
        "started_at": "2023-11-07T05:32:58+00:00",
        "finished_at": "2023-11-07T05:33:11.900000+00:00",
        "duration_sec": 13.9,
    },
]


@pytest.fixture
def database(environment):
    return factories.DatabaseFactory(environment=environment, engine="postgresql")


def url(database) -> str:
    return f"/database/{database.id}/backup"


def _backups(database, count, **kwargs):
    return [
        factories.BackupFactory(
            environment=database.environment,
            database=database,
            created_at=T0 + timedelta(minutes=i),
            **kwargs,
        )
        for i in range(count)
    ]


def test_it_lists_a_databases_backups_in_the_seed_shape(client_for, organisation, database):
    (backup,) = _backups(
        database,
        1,
        phases=PHASES,
        task_id="9a1d3e0c2f6b4b8e8a4f0d2c1b3a5e7f",
        message="Dumping…\nUploaded 12.3 MB to 1 destination\n",
        started_at=T0 + timedelta(seconds=1),
        completed_at=T0 + timedelta(seconds=76.2),
    )
    response = client_for(organisation, Role.VIEWER).get(url(database))
    assert response.status_code == 200
    body = response.json()
    assert_same_shape(body, SEED_EXAMPLE)
    item = body["results"][0]
    assert item["message"] == "Uploaded 12.3 MB to 1 destination"
    status = item["status"]
    assert status["state"] == "READY"
    assert status["is_part_last_deployment"] is True
    assert status["steps"] == {
        "total_duration_sec": 75.2,
        "total_computing_duration_sec": 74.9,
        "details": [
            {"step_name": "DUMP", "status": "SUCCESS", "duration_sec": 61.0},
            {"step_name": "UPLOAD", "status": "SUCCESS", "duration_sec": 13.9},
        ],
    }
    assert body["page"] == 1
    assert body["page_size"] == 20


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (BackupStatus.SCHEDULED, "QUEUED"),
        (BackupStatus.IN_PROGRESS, "BUILDING"),
        (BackupStatus.COMPLETED, "READY"),
        (BackupStatus.FAILED, "BUILD_ERROR"),
        (BackupStatus.ABORTING, "CANCELING"),
        (BackupStatus.ABORTED, "CANCELED"),
        (BackupStatus.DELETING, "DELETING"),
        (BackupStatus.DELETED, "DELETED"),
        (BackupStatus.NOT_SUPPORTED, "BUILD_ERROR"),
    ],
)
def test_each_status_maps_to_its_documented_state(
    client_for, organisation, database, status, state
):
    _backups(database, 1, status=status)
    body = client_for(organisation, Role.VIEWER).get(url(database)).json()
    assert body["results"][0]["status"]["state"] == state


def test_only_the_newest_backup_is_part_of_the_last_deployment(client_for, organisation, database):
    _backups(database, 3)
    results = client_for(organisation, Role.VIEWER).get(url(database)).json()["results"]
    assert [r["status"]["is_part_last_deployment"] for r in results] == [True, False, False]


def test_it_pages_and_starts_after_a_backup(client_for, organisation, database):
    ids = [str(b.id) for b in _backups(database, 5)]
    client = client_for(organisation, Role.VIEWER)
    page2 = client.get(url(database), {"page": 2, "page_size": 2}).json()
    assert [r["id"] for r in page2["results"]] == ids[::-1][2:4]
    after = client.get(url(database), {"startId": ids[2]}).json()
    assert [r["id"] for r in after["results"]] == ids[::-1][:2]


def test_page_size_is_clamped_to_100(client_for, organisation, database):
    _backups(database, 101)
    body = client_for(organisation, Role.VIEWER).get(url(database), {"page_size": 500}).json()
    assert body["page_size"] == 100
    assert len(body["results"]) == 100


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"page": "first"}, "page"),
        ({"page_size": "0"}, "page_size"),
        ({"startId": "yesterday"}, "startId"),
        ({"startId": "3c90c3cc-0d44-4b50-8888-8dd25736052a"}, "startId"),
    ],
)
def test_a_bad_query_value_is_a_400_naming_the_parameter(
    client_for, organisation, database, params, named
):
    response = client_for(organisation, Role.VIEWER).get(url(database), params)
    assert response.status_code == 400
    assert named in response.json()["error"]["message"]


def test_another_organisations_database_is_a_404(client_for, other_organisation, database):
    _backups(database, 1)
    assert client_for(other_organisation).get(url(database)).status_code == 404
    assert client_for(other_organisation).get(url(database) + "/").status_code == 404


def test_no_token_and_a_bad_token_are_401(api_client, database):
    assert api_client.get(url(database)).status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION="Bearer sbx_nope")
    assert api_client.get(url(database)).status_code == 401


def test_a_page_costs_the_same_queries_whatever_its_size(client_for, organisation, database):
    _backups(database, 60, phases=PHASES)
    client = client_for(organisation, Role.VIEWER)
    client.get(url(database))
    counts = []
    for page_size in (5, 50):
        with CaptureQueriesContext(connection) as queries:
            body = client.get(url(database), {"page_size": page_size, "page": 1}).json()
        assert len(body["results"]) == page_size
        counts.append(len(queries))
    assert counts[0] == counts[1]
