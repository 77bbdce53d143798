"""Retention enforcement against the database: what is deleted, how, and expires_at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.models import Alert, AlertKind, Severity
from backups.models import Backup, BackupKind, BackupStatus, BackupTrigger
from restores.models import RestoreStatus
from schedules import tasks
from schedules.enforcement import (
    BEING_RESTORED,
    retention_enforce,
    retention_plan_for,
    retention_update_expiry,
)
from schedules.retention import BackupInfo, RetentionPolicy, plan_retention
from tests import factories
from tests.fixtures.queue import queued_tasks

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def daily(environment, days: int, *, schedule=None, kind=BackupKind.DATABASE, **extra):
    """One scheduled backup a day at 02:00 for ``days`` days up to today, oldest first."""
    fields = {"trigger": BackupTrigger.SCHEDULED, "schedule": schedule, **extra}
    return [
        factories.BackupFactory(
            environment=environment,
            kind=kind,
            created_at=datetime(2026, 11, 23, 2, tzinfo=UTC) - timedelta(days=n),
            **fields,
        )
        for n in reversed(range(days))
    ]


@pytest.fixture
def schedule(environment):
    return factories.ScheduleFactory(environment=environment, retain_daily=3)


def statuses(backups) -> dict:
    return {b.name: Backup.objects.get(pk=b.pk).status for b in backups}


def infos_of(environment) -> list[BackupInfo]:
    """The test's own mapping of rows to BackupInfo, to compare with the module's."""
    return [
        BackupInfo(
            id=b.pk,
            created_at=b.created_at,
            kind=b.kind,
            status=b.status,
            size=b.size or 0,
            manual=b.trigger != BackupTrigger.SCHEDULED,
            expires_at=b.expires_at if b.trigger != BackupTrigger.SCHEDULED else None,
        )
        for b in Backup.objects.filter(environment=environment)
    ]


def test_it_deletes_exactly_what_plan_retention_says_through_the_delete_path(environment, schedule):
    backups = daily(environment, 10, schedule=schedule)
    manual = factories.BackupFactory(
        environment=environment, created_at=NOW - timedelta(days=20), trigger=BackupTrigger.MANUAL
    )
    old_failure = factories.BackupFactory(
        environment=environment,
        trigger=BackupTrigger.SCHEDULED,
        status=BackupStatus.FAILED,
        created_at=NOW - timedelta(days=9, hours=1),
    )
    expected = plan_retention(infos_of(environment), schedule.retention_policy(), "UTC", NOW)

    removed = retention_enforce(environment=environment, now=NOW)

    assert {b.pk for b in removed} == {d.backup_id for d in expected.deleted}
    assert {b.pk for b in removed} == {b.pk for b in backups[:7]} | {old_failure.pk}
    for backup in removed:
        assert Backup.objects.get(pk=backup.pk).status == BackupStatus.DELETING
    kept = backups[7:] + [manual]
    assert set(statuses(kept).values()) == {BackupStatus.COMPLETED}


def test_the_delete_path_queues_the_cleanup_of_every_copy(
    environment, schedule, django_capture_on_commit_callbacks
):
    daily(environment, 5, schedule=schedule)

    with django_capture_on_commit_callbacks(execute=True):
        removed = retention_enforce(environment=environment, now=NOW)

    queued = queued_tasks()
    cleanups = [t for t in queued if t["func"] == "backups.tasks.delete_backups"]
    # One cleanup task for the chunk, naming every backup it marked.
    assert [sorted(t["args"][0]) for t in cleanups] == [sorted(str(b.pk) for b in removed)]
    assert len(removed) == 2


def test_it_never_deletes_the_newest_backup(environment):
    factories.ScheduleFactory(environment=environment, retain_daily=0, retain_weekly=0)
    backups = daily(environment, 4)

    removed = retention_enforce(environment=environment, now=NOW)

    assert backups[-1].pk not in {b.pk for b in removed}
    assert len(removed) == 3
    assert Backup.objects.get(pk=backups[-1].pk).status == BackupStatus.COMPLETED


def test_a_backup_being_restored_is_kept(environment, schedule):
    backups = daily(environment, 6, schedule=schedule)
    factories.RestoreFactory(backup=backups[0], status=RestoreStatus.IN_PROGRESS)

    removed = retention_enforce(environment=environment, now=NOW)

    assert backups[0].pk not in {b.pk for b in removed}
    assert len(removed) == 2
    plan = retention_plan_for(environment=environment, now=NOW)
    assert BEING_RESTORED in plan.decision(str(backups[0].pk)).reasons


def test_a_finished_restore_protects_nothing(environment, schedule):
    backups = daily(environment, 4, schedule=schedule)
    factories.RestoreFactory(backup=backups[0], status=RestoreStatus.COMPLETED)

    assert backups[0].pk in {b.pk for b in retention_enforce(environment=environment, now=NOW)}


def test_the_pitr_and_caller_protection_hook_keeps_a_backup(environment, schedule):
    backups = daily(environment, 5, schedule=schedule)

    plan = retention_plan_for(
        environment=environment, now=NOW, protected={backups[0].pk: "PITR window"}
    )

    assert plan.decision(str(backups[0].pk)).keep
    assert plan.decision(str(backups[0].pk)).reasons == ["PITR window"]


def test_it_counts_buckets_in_the_schedules_timezone(environment):
    # 23:30 UTC on 2026-11-21 is 08:30 on the 22nd in Tokyo: one day bucket with the 22nd.
    factories.ScheduleFactory(environment=environment, retain_daily=1, timezone="Asia/Tokyo")
    late = factories.BackupFactory(
        environment=environment,
        trigger=BackupTrigger.SCHEDULED,
        created_at=datetime(2026, 11, 21, 23, 30, tzinfo=UTC),
    )
    newer = factories.BackupFactory(
        environment=environment,
        trigger=BackupTrigger.SCHEDULED,
        created_at=datetime(2026, 11, 22, 2, tzinfo=UTC),
    )

    plan = retention_plan_for(environment=environment, now=NOW)

    assert plan.decision(str(newer.pk)).reasons[0] == "daily 2026-11-22"
    assert not plan.decision(str(late.pk)).keep


def test_a_proposed_policy_is_previewed_without_deleting_anything(environment, schedule):
    backups = daily(environment, 10, schedule=schedule)

    plan = retention_plan_for(
        environment=environment, policy=RetentionPolicy(retain_daily=1), now=NOW
    )

    assert plan.deleted_count == 9
    assert plan.bytes_freed == sum(b.size for b in backups[:9])
    assert set(statuses(backups).values()) == {BackupStatus.COMPLETED}


def test_enforcing_twice_deletes_nothing_more(environment, schedule):
    daily(environment, 10, schedule=schedule)

    first = retention_enforce(environment=environment, now=NOW)
    second = retention_enforce(environment=environment, now=NOW)

    assert len(first) == 7
    assert second == []


def test_it_leaves_base_backups_and_other_environments_alone(environment, schedule, project):
    base = factories.BackupFactory(
        environment=environment,
        kind=BackupKind.BASE,
        trigger=BackupTrigger.SCHEDULED,
        created_at=NOW - timedelta(days=30),
    )
    daily(environment, 5, schedule=schedule)
    elsewhere = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=factories.OrganisationFactory())
    )
    theirs = daily(elsewhere, 5)

    retention_enforce(environment=environment, now=NOW)

    assert Backup.objects.get(pk=base.pk).status == BackupStatus.COMPLETED
    assert set(statuses(theirs).values()) == {BackupStatus.COMPLETED}


def test_it_raises_one_info_alert_summarising_what_it_removed(environment, schedule):
    daily(environment, 6, schedule=schedule)

    removed = retention_enforce(environment=environment, now=NOW)

    alert = Alert.objects.get(kind=AlertKind.RETENTION_DELETED)
    assert alert.severity == Severity.INFO
    assert alert.environment == environment
    assert alert.title.startswith("Retention removed 3 backup(s)")
    for backup in removed:
        assert f"{backup.name}: not kept by any rule" in alert.message


def test_nothing_removed_raises_no_alert(environment, schedule):
    daily(environment, 2, schedule=schedule)

    assert retention_enforce(environment=environment, now=NOW) == []
    assert not Alert.objects.filter(kind=AlertKind.RETENTION_DELETED).exists()


def test_it_writes_expires_at_from_the_plan(environment):
    factories.ScheduleFactory(environment=environment, retain_daily_days=7)
    backups = daily(environment, 3)

    changed = retention_update_expiry(environment=environment, now=NOW)

    assert changed == 3
    for backup in backups:
        backup.refresh_from_db()
        assert backup.expires_at == backup.created_at + timedelta(days=7)
    assert retention_update_expiry(environment=environment, now=NOW) == 0


def test_a_count_only_rule_leaves_expires_at_empty(environment, schedule):
    backups = daily(environment, 2, schedule=schedule, expires_at=NOW)

    retention_update_expiry(environment=environment, now=NOW)

    assert {Backup.objects.get(pk=b.pk).expires_at for b in backups} == {None}


def test_a_manual_backups_own_expiry_is_never_overwritten(environment, schedule):
    own = NOW + timedelta(days=90)
    manual = factories.BackupFactory(
        environment=environment, trigger=BackupTrigger.MANUAL, expires_at=own
    )
    daily(environment, 2, schedule=schedule)

    retention_enforce(environment=environment, now=NOW)

    manual.refresh_from_db()
    assert manual.expires_at == own
    assert manual.status == BackupStatus.COMPLETED


def test_an_expired_manual_backup_is_deleted(environment, schedule):
    manual = factories.BackupFactory(
        environment=environment,
        trigger=BackupTrigger.MANUAL,
        created_at=NOW - timedelta(days=3),
        expires_at=NOW - timedelta(hours=1),
    )
    daily(environment, 2, schedule=schedule)

    assert [b.pk for b in retention_enforce(environment=environment, now=NOW)] == [manual.pk]


def test_the_hourly_task_enforces_every_environment_with_a_schedule(environment, schedule, project):
    daily(environment, 5, schedule=schedule)
    unscheduled = factories.EnvironmentFactory(project=project, slug="unscheduled")
    untouched = daily(unscheduled, 5)

    assert tasks.enforce_retention() == 2
    assert set(statuses(untouched).values()) == {BackupStatus.COMPLETED}
