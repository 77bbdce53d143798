"""Seed 000: GET /api/v3/organizations/{org}/applications/{app}/environments/{env}/backups/{type}"""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api.dialects.seed000 import size_formatted
from backups.models import BackupKind, BackupMethod
from organizations.authentication import issue_jwt
from organizations.models import Role
from tests import factories
from tests.api.shapes import assert_same_shape

# The seed document's example, verbatim.
SEED_EXAMPLE = {
    "backups": [
        {
            "backupId": "quant-gov-dashboard-staging-2025-09-19T21-50-27-145Z",
            "status": "completed",
            "type": "logical",
            "engine": "mysql",
            "description": "Manual backup",
            "createdAt": "2025-09-19T21:50:27.317Z",
            "updatedAt": "2025-09-19T21:51:09+00:00",
            "taskArn": "arn:aws:ecs:ap-southeast-4:056500205767:task/au-prd-quant-cloud-cluster/"
            "305a68f04bf641f887a87b74d67fa57e",
            "s3Key": "database-backups/quant-gov/dashboard/staging/"
            "quant-gov-dashboard-staging-2025-09-19T21-50-27-145Z.sql.gz",
            "bucketName": "au-prd-manual-backups",
            "size": 1945663,
            "sizeFormatted": "1.86 MB",
            "fileExists": True,
        }
    ],
    "count": 1,
    "nextToken": "opaque",
    "message": "Found 1 database backup(s)",
}

URL = "/api/v3/organizations/quant-gov/applications/dashboard/environments/staging/backups/{}"
T0 = datetime(2025, 9, 19, 21, 50, 27, 317000, tzinfo=UTC)


@pytest.fixture
def bucket(organisation):
    return factories.DestinationFactory(
        organisation=organisation,
        name="Manual backups",
        kind="s3",
        config={"bucket": "au-prd-manual-backups"},
    )


def _backup(environment, *, minutes=0, bucket=None, **kwargs):
    backup = factories.BackupFactory(
        environment=environment, created_at=T0 + timedelta(minutes=minutes), **kwargs
    )
    if bucket is not None:
        factories.BackupCopyFactory(
            backup=backup, destination=bucket, key=f"database-backups/{backup.name}.sql.gz"
        )
    return backup


def test_it_lists_database_backups_in_the_seed_shape(client_for, organisation, environment, bucket):
    _backup(
        environment,
        bucket=bucket,
        name="quant-gov-dashboard-staging-2025-09-19T21-50-27-145Z",
        engine="mysql",
        task_id="305a68f04bf641f887a87b74d67fa57e",
    )
    response = client_for(organisation, Role.VIEWER).get(URL.format("database"))
    assert response.status_code == 200
    body = response.json()
    assert_same_shape(body, SEED_EXAMPLE, nullable=("$.nextToken",))
    item = body["backups"][0]
    assert item["backupId"] == "quant-gov-dashboard-staging-2025-09-19T21-50-27-145Z"
    assert item["createdAt"] == "2025-09-19T21:50:27.317Z"
    assert item["type"] == "logical"
    assert item["bucketName"] == "au-prd-manual-backups"
    assert item["s3Key"].endswith(".sql.gz")
    assert item["sizeFormatted"] == "1.86 MB"
    assert item["fileExists"] is True
    assert body["count"] == 1
    assert body["nextToken"] is None
    assert body["message"] == "Found 1 database backup(s)"


def test_it_accepts_a_trailing_slash_and_uuids(client_for, organisation, project, environment):
    _backup(environment)
    url = (
        f"/api/v3/organizations/{organisation.id}/applications/{project.id}"
        f"/environments/{environment.id}/backups/database/"
    )
    response = client_for(organisation, Role.VIEWER).get(url)
    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_a_full_backup_is_listed_under_each_type(client_for, organisation, environment):
    _backup(environment, kind=BackupKind.FULL, minutes=1)
    _backup(environment, kind=BackupKind.DATABASE, minutes=2)
    _backup(environment, kind=BackupKind.FILESYSTEM, method=BackupMethod.ARCHIVE, minutes=3)
    client = client_for(organisation, Role.VIEWER)
    database = client.get(URL.format("database")).json()
    files = client.get(URL.format("filesystem")).json()
    assert database["count"] == 2
    assert files["count"] == 2
    assert files["message"] == "Found 2 filesystem backup(s)"
    assert {b["type"] for b in files["backups"]} == {"archive", "logical"}


def test_an_invalid_type_is_a_422_with_the_documented_error(client_for, organisation, environment):
    response = client_for(organisation).get(URL.format("tables"))
    assert response.status_code == 422
    assert response.json() == {"error": "The backup type must be either database or filesystem"}


def test_it_orders_and_pages_with_next_token(client_for, organisation, environment):
    names = [_backup(environment, minutes=i).name for i in range(5)]
    client = client_for(organisation, Role.VIEWER)
    first = client.get(URL.format("database"), {"limit": 2, "order": "asc"}).json()
    assert [b["backupId"] for b in first["backups"]] == names[:2]
    second = client.get(
        URL.format("database"), {"limit": 2, "order": "asc", "nextToken": first["nextToken"]}
    ).json()
    assert [b["backupId"] for b in second["backups"]] == names[2:4]
    newest = client.get(URL.format("database"), {"limit": 2}).json()
    assert [b["backupId"] for b in newest["backups"]] == names[::-1][:2]


def test_it_filters_by_dates_and_status(client_for, organisation, environment):
    _backup(environment, minutes=0)
    _backup(environment, minutes=10, status="failed")
    _backup(environment, minutes=20)
    client = client_for(organisation, Role.VIEWER)
    after = (T0 + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    before = (T0 + timedelta(minutes=15)).isoformat()
    body = client.get(
        URL.format("database"), {"createdAfter": after, "createdBefore": before}
    ).json()
    assert body["count"] == 1
    assert client.get(URL.format("database"), {"status": "failed"}).json()["count"] == 1


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"createdBefore": "yesterday"}, "createdBefore"),
        ({"createdAfter": "2025-13-45"}, "createdAfter"),
        ({"createdBefore": "0001-01-01T00:00:00+01:00"}, "createdBefore"),  # year 0 in UTC
        ({"createdAfter": "9999-12-31T23:00:00-05:00"}, "createdAfter"),  # year 10000 in UTC
        ({"status": "done"}, "status"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"nextToken": "not-a-token"}, "nextToken"),
    ],
)
def test_a_bad_query_value_is_a_400_naming_the_parameter(
    client_for, organisation, environment, params, named
):
    response = client_for(organisation, Role.VIEWER).get(URL.format("database"), params)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error"}
    assert named in body["error"]


def test_an_unknown_status_lists_the_allowed_values(client_for, organisation, environment):
    response = client_for(organisation, Role.VIEWER).get(URL.format("database"), {"status": "x"})
    assert "in-progress" in response.json()["error"]


def test_a_limit_above_100_is_clamped(client_for, organisation, environment):
    factories.BackupFactory.create_batch(105, environment=environment)
    body = client_for(organisation, Role.VIEWER).get(URL.format("database"), {"limit": 500}).json()
    assert body["count"] == 100
    assert body["nextToken"]


def test_the_default_limit_is_20(client_for, organisation, environment):
    factories.BackupFactory.create_batch(25, environment=environment)
    body = client_for(organisation, Role.VIEWER).get(URL.format("database")).json()
    assert body["count"] == 20


def test_another_organisations_environment_is_a_404(
    client_for, organisation, other_organisation, environment
):
    _backup(environment)
    response = client_for(other_organisation).get(URL.format("database"))
    assert response.status_code == 404
    assert set(response.json()) == {"error"}


def test_an_unknown_environment_is_a_404(client_for, organisation, environment):
    url = (
        "/api/v3/organizations/quant-gov/applications/dashboard/environments/nope/backups/database"
    )
    assert client_for(organisation).get(url).status_code == 404


def test_a_user_in_several_organisations_acts_in_the_one_the_path_names(
    api_client, organisation, other_organisation, viewer, environment
):
    factories.MembershipFactory(user=viewer, organisation=other_organisation)
    _backup(environment)
    token, _ = issue_jwt(viewer)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.get(URL.format("database")).json()["count"] == 1
    elsewhere = URL.format("database").replace("quant-gov", "elsewhere")
    assert api_client.get(elsewhere).status_code == 404


def test_no_token_and_a_bad_token_are_401(api_client, environment):
    assert api_client.get(URL.format("database")).status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION="Bearer sbx_wrong")
    response = api_client.get(URL.format("database"))
    assert response.status_code == 401
    assert set(response.json()) == {"error"}


def test_a_page_costs_the_same_queries_whatever_its_size(
    client_for, organisation, environment, bucket
):
    for i in range(60):
        _backup(environment, minutes=i, bucket=bucket)
    client = client_for(organisation, Role.VIEWER)
    client.get(URL.format("database"))  # the token's last_used_at write happens once
    counts = []
    for limit in (5, 50):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(URL.format("database"), {"limit": limit}).json()["count"] == limit
        counts.append(len(queries))
    assert counts[0] == counts[1]


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0.00 B"),
        (1023, "1023.00 B"),
        (1024, "1.00 KB"),
        (1945663, "1.86 MB"),
        (5 << 40, "5.00 TB"),
    ],
)
def test_sizes_are_formatted_1024_based_with_two_decimals(size, text):
    assert size_formatted(size) == text
