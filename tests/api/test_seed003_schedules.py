"""Seed 003 schedule endpoints: get (404 if none), create-or-update, retention preview."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from backups.models import Backup, BackupKind, BackupStatus, BackupTrigger
from organizations.models import Role
from schedules.models import Schedule
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def url(environment):
    return f"/api/environments/{environment.id}/backup-schedule"


def test_an_environment_without_a_schedule_answers_404(client_for, organisation, url):
    response = client_for(organisation, Role.VIEWER).get(url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_an_admin_creates_a_schedule_with_every_seed_field(
    client_for, organisation, environment, destination, url
):
    body = {
        "dbCron": "30 1 * * *",
        "dbFrequency": "custom",
        "fullCron": "",
        "fullFrequency": "weekly",
        "destinationIds": [str(destination.id)],
        "enabled": True,
        "paused": False,
        "timezone": "Europe/London",
        "retainDaily": 7,
        "retainDailyDays": 10,
        "retainWeekly": 4,
        "retainWeeklyDays": None,
        "retainMonthly": 6,
        "retainMonthlyDays": 200,
        "retainHourly": 24,
        "retainHourlyDays": 2,
        "retainDbDaily": 14,
        "retainDbHourly": 0,
        "retainDbWeekly": 8,
        "retainDbMonthly": 12,
        "retainFullDaily": 3,
        "retainFullHourly": 0,
        "retainFullWeekly": 2,
        "retainFullMonthly": 1,
        "walEnabled": True,
        "walRetentionDays": 7,
        "schedules": [{"interval": "weekly", "minute": [30], "hour": [18], "day": [4]}],
    }
    response = client_for(organisation).put(url, body, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    for key, value in body.items():
        if key == "fullCron":
            assert data[key] == "0 3 * * 0"  # set by the weekly preset
        else:
            assert data[key] == value, key
    assert data["nextDbRun"] is not None
    schedule = Schedule.objects.get(environment=environment)
    assert schedule.retain_db_monthly == 12 and schedule.wal_retention_days == 7
    assert schedule.interval_rules.get().as_seed() == body["schedules"][0]

    again = client_for(organisation, Role.VIEWER).get(url).json()
    assert again == data | {"updatedAt": again["updatedAt"]}


def test_a_field_left_out_keeps_its_value(client_for, organisation, environment, url):
    factories.ScheduleFactory(environment=environment, retain_daily=7, timezone="Europe/Paris")
    response = client_for(organisation).put(url, {"retainWeekly": 4}, format="json")
    assert response.status_code == 200
    data = response.json()
    assert data["retainDaily"] == 7 and data["retainWeekly"] == 4
    assert data["timezone"] == "Europe/Paris"
    assert data["dbCron"] == "0 2 * * *"


def test_a_preset_frequency_sets_its_cron(client_for, organisation, url):
    data = client_for(organisation).put(url, {"dbFrequency": "hourly"}, format="json").json()
    assert data["dbCron"] == "0 * * * *"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dbCron": "every day"}, "dbCron"),
        ({"fullCron": "61 * * * *"}, "fullCron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"destinationIds": [str(uuid.uuid4())]}, "destinationIds"),
        ({"destinationIds": ["not-a-uuid"]}, "destinationIds"),
        ({"dbFrequency": "fortnightly"}, "dbFrequency"),
        ({"retainDaily": -1}, "retainDaily"),
        ({"retainDbWeekly": "many"}, "retainDbWeekly"),
        ({"walEnabled": True}, "walRetentionDays"),
        ({"walEnabled": True, "walRetentionDays": 7, "dbCron": "0 2 * * *"}, "walEnabled"),
        ({"walRetentionDays": 0}, "walRetentionDays"),
        ({"enabled": "perhaps"}, "enabled"),
        ({"dbFrequency": "custom", "dbCron": ""}, "dbCron"),
        ({"schedules": [{"interval": "weekly", "minute": [0], "hour": [1]}]}, "schedules[0].day"),
        ({"schedules": [{"interval": "daily", "minute": [99], "hour": [1]}]}, "schedules"),
    ],
)
def test_invalid_schedule_input_is_a_400_naming_the_field(
    client_for, organisation, environment, url, body, field
):
    response = client_for(organisation).put(url, body, format="json")
    assert response.status_code == 400, response.json()
    fields = response.json()["error"]["fields"]
    assert any(name.startswith(field) for name in fields), fields
    assert not Schedule.objects.filter(environment=environment).exists()


def test_another_organisations_destination_is_unknown(
    client_for, organisation, other_organisation, url
):
    foreign = factories.DestinationFactory(organisation=other_organisation)
    response = client_for(organisation).put(
        url, {"destinationIds": [str(foreign.id)]}, format="json"
    )
    assert response.status_code == 400
    assert "destinationIds" in response.json()["error"]["fields"]


def test_only_an_admin_changes_a_schedule(client_for, organisation, url):
    response = client_for(organisation, Role.OPERATOR).put(url, {"paused": True}, format="json")
    assert response.status_code == 403


# --- retention preview ------------------------------------------------------------------------


def _daily_backups(environment, days, *, now):
    made = []
    for day in range(days):
        made.append(
            factories.BackupFactory(
                environment=environment,
                kind=BackupKind.DATABASE,
                trigger=BackupTrigger.SCHEDULED,
                created_at=now - timedelta(days=day),
                size=1000,
            )
        )
    return made


def test_the_retention_preview_lists_deleted_and_kept_backups_with_reasons(
    client_for, organisation, environment, url
):
    now = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    backups = _daily_backups(environment, 10, now=now)
    response = client_for(organisation, Role.VIEWER).post(
        f"{url}/retention-preview", {"retainDaily": 3}, format="json"
    )
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["keptCount"] == 3 and data["deletedCount"] == 7
    assert data["bytesFreed"] == 7000
    assert [k["id"] for k in data["kept"]] == [str(b.id) for b in backups[:3]]
    assert data["kept"][0]["reason"] == f"daily {now.date().isoformat()}"
    assert "newest" in data["kept"][0]["reasons"]
    assert {d["reason"] for d in data["deleted"]} == {"not kept by any rule"}
    assert data["policy"]["retainDaily"] == 3
    # nothing was deleted
    assert Backup.objects.filter(status=BackupStatus.COMPLETED).count() == 10


def test_the_preview_starts_from_the_schedule_and_applies_the_proposal(
    client_for, organisation, environment, url
):
    factories.ScheduleFactory(environment=environment, retain_daily=2, retain_weekly=1)
    now = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    _daily_backups(environment, 5, now=now)
    client = client_for(organisation)
    current = client.post(f"{url}/retention-preview", {}, format="json").json()
    assert current["policy"]["retainDaily"] == 2 and current["policy"]["retainWeekly"] == 1
    cleared = client.post(
        f"{url}/retention-preview", {"retainDaily": None, "retainWeekly": None}, format="json"
    ).json()
    assert cleared["deletedCount"] == 0  # no policy keeps everything
    assert {k["reason"] for k in cleared["kept"]} <= {"no retention policy", "newest"}


def test_a_bad_retention_proposal_is_a_400_naming_the_field(client_for, organisation, url):
    response = client_for(organisation).post(
        f"{url}/retention-preview", {"retainFullMonthly": -3}, format="json"
    )
    assert response.status_code == 400
    assert "retainFullMonthly" in response.json()["error"]["fields"]


def test_a_retention_count_too_large_to_mean_anything_is_a_400(
    organisation, environment, client_for
):
    client = client_for(organisation, "admin")
    response = client.put(
        f"/api/environments/{environment.id}/backup-schedule",
        {"dbCron": "0 2 * * *", "retainDbDaily": 195969269802},
        format="json",
    )
    assert response.status_code == 400
    assert "retainDbDaily" in response.json()["error"]["fields"]
