"""GET/POST /api/databases/{databaseId}/drills and the drill policy: roles, tenancy, bodies."""

import pytest

from drills import tasks
from drills.models import Drill, DrillPolicy, DrillStatus
from organizations.models import Role
from tests import factories
from tests.backups.helpers import database_for, run_backup_now
from tests.fixtures.databases import fill_sqlite, table_checksums

pytestmark = pytest.mark.django_db

DRILL_KEYS = {"id", "backupId", "status", "startedAt", "finishedAt", "rtoSeconds", "rowCounts"}


@pytest.fixture
def database(environment, destination, sqlite_spec):
    fill_sqlite(sqlite_spec, rows=40)
    database = database_for(environment, sqlite_spec)
    run_backup_now(environment=environment, kind="database", database=database)
    return database


def _url(database, tail="drills"):
    return f"/api/databases/{database.id}/{tail}"


def test_an_operator_runs_a_drill_and_a_viewer_lists_it_in_the_documented_shape(
    client_for, organisation, database, sqlite_spec
):
    before = table_checksums(sqlite_spec)
    response = client_for(organisation, Role.OPERATOR).post(_url(database), {}, format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == DRILL_KEYS | {"message"}
    assert body["status"] == "scheduled"
    assert tasks.run_drill(body["id"]) == DrillStatus.PASSED

    listing = client_for(organisation, Role.VIEWER).get(_url(database)).json()
    assert listing["count"] == 1 and listing["limit"] == 20 and listing["offset"] == 0
    (item,) = listing["results"]
    assert item["id"] == body["id"]
    assert item["status"] == "passed"
    assert item["rowCounts"] == {"expected": 40 + 20 + 80, "restored": 40 + 20 + 80}
    assert item["rtoSeconds"] > 0
    assert item["startedAt"] and item["finishedAt"]
    assert table_checksums(sqlite_spec) == before


def test_a_viewer_may_not_start_a_drill(client_for, organisation, database):
    response = client_for(organisation, Role.VIEWER).post(_url(database), {}, format="json")

    assert response.status_code == 403
    assert not Drill.objects.exists()


def test_another_organisations_database_is_a_404_and_its_drills_are_untouched(
    client_for, organisation, other_organisation, database
):
    theirs = factories.DatabaseFactory(
        environment=factories.EnvironmentFactory(
            project=factories.ProjectFactory(organisation=other_organisation)
        ),
        engine="sqlite",
        database_name="/nonexistent.sqlite3",
    )
    Drill.objects.create(environment=theirs.environment, database=theirs)
    ours = client_for(organisation, Role.ADMIN)

    for method, url in (
        ("get", _url(theirs)),
        ("post", _url(theirs)),
        ("get", _url(theirs, "drill-policy")),
        ("put", _url(theirs, "drill-policy")),
    ):
        response = getattr(ours, method)(url, {}, format="json")
        assert response.status_code == 404, (method, url, response.content)
    assert Drill.objects.filter(database=theirs).count() == 1
    assert not DrillPolicy.objects.filter(database=theirs).exists()


def test_a_database_without_a_completed_backup_is_a_422(client_for, organisation, environment):
    database = factories.DatabaseFactory(environment=environment, engine="sqlite")

    response = client_for(organisation, Role.OPERATOR).post(_url(database), {}, format="json")

    assert response.status_code == 422
    assert "no completed backup" in response.json()["error"]["message"]


def test_a_second_drill_while_one_is_scheduled_is_a_409(client_for, organisation, database):
    client = client_for(organisation, Role.OPERATOR)
    assert client.post(_url(database), {}, format="json").status_code == 202

    response = client.post(_url(database), {}, format="json")

    assert response.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"backupId": "8d1e3c2a-6a55-4a9b-9e1f-3c1d2b4a5e6f"}, "backupId"),
        ({"backupId": "not-a-uuid"}, "backupId"),
        ({"backupId": 5}, "backupId"),
        ({"targetType": "same"}, "targetType"),
    ],
)
def test_a_bad_drill_body_is_a_400_naming_the_field(
    client_for, organisation, database, body, field
):
    response = client_for(organisation, Role.OPERATOR).post(_url(database), body, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


def test_a_backup_of_another_database_is_a_400_naming_backup_id(
    client_for, organisation, database, environment, make_sqlite_database
):
    spec = make_sqlite_database()
    fill_sqlite(spec, rows=3)
    other = database_for(environment, spec, slug="other")
    other_backup = run_backup_now(environment=environment, kind="database", database=other)

    response = client_for(organisation, Role.OPERATOR).post(
        _url(database), {"backupId": str(other_backup.id)}, format="json"
    )

    assert response.status_code == 400
    assert "backupId" in response.json()["error"]["fields"]


def test_an_admin_sets_the_drill_policy_and_reads_it_back(client_for, organisation, database):
    admin = client_for(organisation, Role.ADMIN)
    defaults = admin.get(_url(database, "drill-policy")).json()
    assert defaults["enabled"] is False and defaults["nextRunAt"] is None
    assert defaults["namePrefix"] == "strongbox_drill_" and defaults["timezone"] == "UTC"

    response = admin.put(
        _url(database, "drill-policy"),
        {
            "enabled": True,
            "cron": "0 3 * * 0",
            "timezone": "Europe/London",
            "rtoObjectiveSeconds": 900,
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    body = client_for(organisation, Role.VIEWER).get(_url(database, "drill-policy")).json()
    assert body["enabled"] is True and body["cron"] == "0 3 * * 0"
    assert body["timezone"] == "Europe/London"
    assert body["namePrefix"] == "strongbox_drill_"
    assert body["rtoObjectiveSeconds"] == 900
    assert body["hasTargetPassword"] is False
    assert body["nextRunAt"]
    assert "targetPassword" not in body


def test_only_an_admin_changes_the_drill_policy(client_for, organisation, database):
    response = client_for(organisation, Role.OPERATOR).put(
        _url(database, "drill-policy"), {"enabled": True}, format="json"
    )

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"frequency": "fortnightly"}, "frequency"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"namePrefix": "Robert'); DROP"}, "namePrefix"),
        ({"targetHost": "169.254.169.254"}, "targetHost"),
        ({"rtoObjectiveSeconds": 0}, "rtoObjectiveSeconds"),
        ({"enabled": "yes"}, "enabled"),
        ({"cron": "0 3 * * *", "frequency": "daily"}, "cron"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_a_bad_policy_is_a_400_naming_the_field(client_for, organisation, database, body, field):
    response = client_for(organisation, Role.ADMIN).put(
        _url(database, "drill-policy"), body, format="json"
    )

    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"], response.json()
    assert not DrillPolicy.objects.exists()


def test_options_on_the_drill_endpoints_describe_them_without_an_error(
    client_for, organisation, database
):
    client = client_for(organisation, Role.ADMIN)

    for tail in ("drills", "drill-policy"):
        assert client.options(_url(database, tail)).status_code == 200
