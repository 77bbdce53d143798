"""Retention in an environment with several databases: each database is a series of its own.

The shape customers have: three databases of different engines backed up on their own
rhythms for 60 days, weekly full backups, the odd failed run and manual backup, and a
second organisation's environment beside it. Rows with controlled ``created_at``; the
restore after retention, with the real tools, is in ``test_retention_restores.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from backups.models import Backup, BackupKind, BackupStatus, BackupTrigger
from organizations.models import Role
from schedules.enforcement import retention_enforce, retention_plan_for
from schedules.retention import BackupInfo, Series, plan_retention
from schedules.selectors import ENVIRONMENT_SERIES_NAME, retention_preview
from schedules.services import schedule_upsert
from tests import factories

pytestmark = pytest.mark.django_db

DAYS = 60
POLICY = {"retain_db_daily": 7, "retain_db_weekly": 4, "retain_full_weekly": 2}


def last_monday() -> datetime:
    """Midnight (UTC) of this week's Monday: histories end on a known weekday."""
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=today.weekday())


def history(environment, *, days: int = DAYS, end: datetime | None = None) -> dict:
    """60 days of an environment with three databases; returns ``{name: database}``.

    Users DB (MariaDB) at 02:00 and Orders DB (PostgreSQL) a minute later every night up
    to this Monday, Events DB (SQLite) every six hours, a full backup every Sunday, a
    failed Orders DB run a day ago and twenty days ago, and a manual Users DB backup
    without an expiry.
    """
    end = end or last_monday()
    databases = {
        name: factories.DatabaseFactory(environment=environment, name=name, engine=engine)
        for name, engine in (
            ("Users DB", "mariadb"),
            ("Orders DB", "postgresql"),
            ("Events DB", "sqlite"),
        )
    }

    def make(database, created_at, **extra):
        fields = {"trigger": BackupTrigger.SCHEDULED, "size": 1000, **extra}
        return factories.BackupFactory(
            environment=environment,
            database=database,
            engine=database.engine if database else "postgresql",
            kind=BackupKind.DATABASE if database else BackupKind.FULL,
            created_at=created_at,
            **fields,
        )

    for day in range(days):
        night = end - timedelta(days=day) + timedelta(hours=2)
        make(databases["Users DB"], night)
        make(databases["Orders DB"], night + timedelta(minutes=1))
        for hours in (0, 6, 12, 18):
            make(databases["Events DB"], night + timedelta(hours=hours, minutes=2), size=10)
        if night.weekday() == 6:
            make(None, night + timedelta(minutes=30), size=100_000)
    for days_ago in (1, 20):
        make(
            databases["Orders DB"],
            timezone.now() - timedelta(days=days_ago),
            status=BackupStatus.FAILED,
        )
    make(databases["Users DB"], end - timedelta(days=40), trigger=BackupTrigger.MANUAL)
    return databases


@pytest.fixture
def databases(environment):
    factories.ScheduleFactory(environment=environment, timezone="Europe/London", **POLICY)
    return history(environment)


def backups_of(database) -> list[Backup]:
    return list(Backup.objects.filter(database=database).order_by("-created_at"))


def test_every_database_keeps_its_own_dailies_and_weeklies(environment, databases):
    plan = retention_plan_for(environment=environment)

    for name, database in databases.items():
        scheduled = [
            b
            for b in backups_of(database)
            if b.status == BackupStatus.COMPLETED and b.trigger == BackupTrigger.SCHEDULED
        ]
        decisions = {b.pk: plan.decision(str(b.pk)) for b in scheduled}
        # The newest backup of each database is kept by the daily rule, not only as newest.
        assert decisions[scheduled[0].pk].keep, name
        assert decisions[scheduled[0].pk].reasons[0].startswith("daily "), name
        dailies = [
            b for b in scheduled if any(r.startswith("daily ") for r in decisions[b.pk].reasons)
        ]
        weeklies = [
            b for b in scheduled if any(r.startswith("weekly ") for r in decisions[b.pk].reasons)
        ]
        assert len(dailies) == 7, name
        assert len(weeklies) == 4, name
        kept = {b.pk for b in scheduled if decisions[b.pk].keep}
        assert kept == {b.pk for b in dailies + weeklies}, name


def test_the_environments_plan_is_the_union_of_each_databases_plan_alone(environment, databases):
    plan = retention_plan_for(environment=environment)
    policy = environment.schedule.retention_policy()
    infos = [info_of(b) for b in Backup.objects.filter(environment=environment).order_by("pk")]
    for series in {info.series for info in infos}:
        alone = plan_retention(
            [i for i in infos if i.series == series], policy, "Europe/London", timezone.now()
        )
        for decision in alone.decisions:
            together = plan.decision(decision.backup_id)
            assert (together.keep, together.reasons) == (decision.keep, decision.reasons)
        assert plan.by_series[series] == alone.by_series[series]
    assert set(plan.by_series) == {
        *(Series("database", str(db.pk)) for db in databases.values()),
        Series("full"),
    }


def info_of(backup: Backup):
    """The test's own mapping of a row to what the planner takes, source included."""
    manual = backup.trigger != BackupTrigger.SCHEDULED
    return BackupInfo(
        id=str(backup.pk),
        created_at=backup.created_at,
        kind=backup.kind,
        status=backup.status,
        size=backup.size or 0,
        manual=manual,
        expires_at=backup.expires_at if manual else None,
        source=str(backup.database_id) if backup.database_id else None,
    )


def test_the_preview_breaks_its_totals_down_per_database(
    client_for, organisation, environment, databases
):
    empty = factories.DatabaseFactory(environment=environment, name="Archive DB")
    # One page holds every decision of these ~430 backups.
    response = client_for(organisation, Role.VIEWER).post(
        f"/api/environments/{environment.id}/backup-schedule/retention-preview?limit=1000",
        {},
        format="json",
    )

    assert response.status_code == 200, response.json()
    data = response.json()
    lines = data["totals"]["byDatabase"]
    assert [line["name"] for line in lines] == [
        "Archive DB",
        "Events DB",
        "Orders DB",
        "Users DB",
        ENVIRONMENT_SERIES_NAME,
    ]
    assert lines[0] == {
        "scope": "database",
        "databaseId": str(empty.pk),
        "name": "Archive DB",
        "kept": 0,
        "deleted": 0,
        "bytesFreed": 0,
    }
    by_id = {line["databaseId"]: line for line in lines}
    for database in databases.values():
        line = by_id[str(database.pk)]
        rows = [r for r in data["kept"] + data["deleted"] if r["databaseId"] == str(database.pk)]
        assert line["kept"] == sum(1 for r in data["kept"] if r in rows)
        assert line["deleted"] == sum(1 for r in data["deleted"] if r in rows)
        assert line["bytesFreed"] == sum(r["size"] for r in data["deleted"] if r in rows)
    # Ending on a Monday: 7 dailies back to Tuesday; of the 4 weeklies, this week's (Monday)
    # and last week's (Sunday) are dailies too. Orders DB also keeps yesterday's failed
    # run; the one of twenty days ago and every other night go.
    orders = by_id[str(databases["Orders DB"].pk)]
    assert (orders["kept"], orders["deleted"]) == (9 + 1, DAYS - 9 + 1)
    events = by_id[str(databases["Events DB"].pk)]
    assert (events["kept"], events["deleted"]) == (9, DAYS * 4 - 9)
    environment_line = lines[-1]
    assert environment_line["scope"] == "environment" and environment_line["databaseId"] is None
    assert environment_line["kept"] == 2
    # The lines add up to the unchanged top-level fields.
    assert sum(line["kept"] for line in lines) == data["keptCount"] == data["totals"]["kept"]
    assert sum(line["deleted"] for line in lines) == data["deletedCount"]
    assert sum(line["bytesFreed"] for line in lines) == data["bytesFreed"]
    assert data["totals"]["bytesFreed"] == data["bytesFreed"]


def test_enforcement_deletes_exactly_what_the_preview_showed(
    client_for, organisation, environment, databases, other_organisation
):
    # Another organisation's environment, with the same shape and no schedule of its own.
    elsewhere = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation)
    )
    history(elsewhere, days=10)
    preview = client_for(organisation, Role.VIEWER).post(
        f"/api/environments/{environment.id}/backup-schedule/retention-preview?limit=1000",
        {},
        format="json",
    )
    shown = {row["id"] for row in preview.json()["deleted"]}

    removed = retention_enforce(environment=environment)

    assert {str(b.pk) for b in removed} == shown
    assert set(
        Backup.objects.filter(environment=environment, status=BackupStatus.DELETING).values_list(
            "id", flat=True
        )
    ) == {b.pk for b in removed}
    kept = Backup.objects.filter(environment=environment).exclude(status=BackupStatus.DELETING)
    assert {str(pk) for pk in kept.values_list("id", flat=True)} == {
        row["id"] for row in preview.json()["kept"]
    }
    for database in databases.values():
        assert Backup.objects.filter(database=database, status=BackupStatus.COMPLETED).count() >= 7
    assert (
        not Backup.objects.filter(environment=elsewhere)
        .exclude(status=BackupStatus.COMPLETED)
        .exclude(status=BackupStatus.FAILED)
        .exists()
    )
    # Planning again finds nothing more to delete.
    assert retention_plan_for(environment=environment).deleted_count == 0


def test_the_preview_of_a_proposal_counts_per_database_too(environment, databases):
    preview = retention_preview(environment=environment, overrides={"retainDbWeekly": 0})

    by_name = {line.name: line for line in preview.by_database}
    for name in ("Users DB", "Orders DB", "Events DB"):
        scheduled_kept = by_name[name].kept
        assert scheduled_kept >= 7, name
    assert by_name["Users DB"].kept == 7 + 1  # and its manual backup
    assert by_name["Orders DB"].kept == 7 + 1  # and the failed run of three days ago
    assert by_name["Events DB"].kept == 7


def test_schedule_upsert_recomputes_expiry_only_when_the_policy_or_timezone_changes(
    environment, databases
):
    orders = databases["Orders DB"]
    newest = Backup.objects.filter(database=orders, status=BackupStatus.COMPLETED).latest(
        "created_at"
    )
    sentinel = newest.created_at + timedelta(days=365)
    Backup.objects.filter(pk=newest.pk).update(expires_at=sentinel)

    schedule_upsert(environment=environment, db_cron="15 3 * * *")
    assert Backup.objects.get(pk=newest.pk).expires_at == sentinel

    schedule_upsert(
        environment=environment, retain_db_daily=None, retain_db_weekly=None, retain_daily_days=3
    )
    # Kept by "daily within 3 days" alone now.
    assert Backup.objects.get(pk=newest.pk).expires_at == newest.created_at + timedelta(days=3)

    Backup.objects.filter(pk=newest.pk).update(expires_at=sentinel)
    schedule_upsert(environment=environment, timezone="America/New_York")
    assert Backup.objects.get(pk=newest.pk).expires_at == newest.created_at + timedelta(days=3)
