"""The schedule tick and missed-run detection, with a fixed ``now``."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from alerts.models import Alert, AlertKind
from backups.models import Backup, BackupKind, BackupStatus, BackupTrigger
from schedules import runs
from schedules.models import Schedule
from schedules.runs import detect_missed_runs, missed_run_dedup_key, schedules_run_due
from tests import factories

pytestmark = pytest.mark.django_db


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# The schedules below were saved at ANCHOR; their 02:00 slot on 2026-11-20 is the first.
ANCHOR = utc(2026, 11, 19, 12)
SLOT = utc(2026, 11, 20, 2)


@pytest.fixture
def database(environment, destination):
    return factories.DatabaseFactory(environment=environment, name="Main", slug="main")


def make_schedule(environment, *, saved_at=ANCHOR, rules=(), **fields) -> Schedule:
    """A schedule as if saved at ``saved_at`` (the anchor new crons count slots from)."""
    fields.setdefault("db_cron", "0 2 * * *")
    schedule = factories.ScheduleFactory(environment=environment, **fields)
    for rule in rules:
        factories.IntervalRuleFactory(schedule=schedule, **rule)
    Schedule.objects.filter(pk=schedule.pk).update(updated_at=saved_at, created_at=saved_at)
    schedule.refresh_from_db()
    return schedule


def scheduled_backups(schedule) -> list[Backup]:
    return list(Backup.objects.filter(schedule=schedule).order_by("created_at"))


def finish(schedule) -> None:
    """The worker finished the schedule's backups (so the next one is not a conflict)."""
    Backup.objects.filter(schedule=schedule).update(
        status=BackupStatus.COMPLETED, completed_at=datetime.now(UTC)
    )


@pytest.fixture
def schedule(environment, database, destination):
    return make_schedule(environment)


# --- the tick -------------------------------------------------------------------------


def test_it_starts_a_scheduled_backup_when_a_slot_comes_due(schedule, database, destination):
    result = schedules_run_due(now=SLOT + timedelta(seconds=30))

    (backup,) = scheduled_backups(schedule)
    assert backup.trigger == BackupTrigger.SCHEDULED
    assert backup.kind == BackupKind.DATABASE
    assert backup.database == database
    assert backup.status == BackupStatus.SCHEDULED
    assert list(backup.destinations.all()) == [destination]
    assert [run.backup_ids for run in result.started] == [[backup.pk]]
    schedule.refresh_from_db()
    assert schedule.last_db_slot_at == SLOT


def test_it_runs_the_schedules_own_destinations(environment, database, destination, organisation):
    other = factories.DestinationFactory(
        organisation=organisation, name="Offsite", is_default=False
    )
    schedule = make_schedule(environment)
    schedule.destinations.set([other])

    schedules_run_due(now=SLOT + timedelta(seconds=30))

    (backup,) = scheduled_backups(schedule)
    assert list(backup.destinations.all()) == [other]


def test_nothing_runs_before_the_slot(schedule):
    result = schedules_run_due(now=SLOT - timedelta(seconds=1))

    assert result.runs == []
    assert scheduled_backups(schedule) == []


def test_a_slot_runs_once_however_many_ticks_see_it(schedule):
    schedules_run_due(now=SLOT + timedelta(seconds=5))
    finish(schedule)
    schedules_run_due(now=SLOT + timedelta(seconds=65))
    schedules_run_due(now=SLOT + timedelta(hours=23))

    assert len(scheduled_backups(schedule)) == 1


def test_the_next_slot_runs_the_next_day(schedule):
    schedules_run_due(now=SLOT + timedelta(seconds=5))
    finish(schedule)
    schedules_run_due(now=SLOT + timedelta(days=1, seconds=5))

    assert len(scheduled_backups(schedule)) == 2
    schedule.refresh_from_db()
    assert schedule.last_db_slot_at == SLOT + timedelta(days=1)


def test_a_slot_missed_while_the_worker_was_down_runs_once_on_start(schedule):
    Schedule.objects.filter(pk=schedule.pk).update(last_db_slot_at=SLOT)
    # The worker was down for three days and a half: three 02:00 slots passed.
    result = schedules_run_due(now=SLOT + timedelta(days=3, hours=12))

    assert len(result.started) == 1
    assert len(scheduled_backups(schedule)) == 1
    schedule.refresh_from_db()
    assert schedule.last_db_slot_at == SLOT + timedelta(days=3)


def test_a_new_schedule_does_not_back_fill_slots_before_it_was_saved(environment, database):
    schedule = make_schedule(environment, saved_at=SLOT + timedelta(minutes=10))

    schedules_run_due(now=SLOT + timedelta(minutes=15))
    assert scheduled_backups(schedule) == []

    schedules_run_due(now=SLOT + timedelta(days=1, seconds=30))
    assert len(scheduled_backups(schedule)) == 1


def test_a_paused_schedule_produces_nothing(environment, database):
    schedule = make_schedule(environment, paused=True)

    result = schedules_run_due(now=SLOT + timedelta(seconds=30))

    assert scheduled_backups(schedule) == []
    assert result.runs == []
    assert result.skipped == 1


def test_a_disabled_schedule_produces_nothing(environment, database):
    schedule = make_schedule(environment, enabled=False)

    schedules_run_due(now=SLOT + timedelta(seconds=30))

    assert scheduled_backups(schedule) == []


def test_resuming_a_schedule_does_not_back_fill_the_slots_it_slept_through(environment, database):
    schedule = make_schedule(environment, paused=True)
    schedules_run_due(now=SLOT + timedelta(seconds=30))

    Schedule.objects.filter(pk=schedule.pk).update(paused=False)
    schedules_run_due(now=SLOT + timedelta(hours=3))
    assert scheduled_backups(schedule) == []

    schedules_run_due(now=SLOT + timedelta(days=1, seconds=30))
    assert len(scheduled_backups(schedule)) == 1


def test_a_change_of_cron_takes_effect_at_the_next_tick(schedule):
    schedules_run_due(now=SLOT + timedelta(seconds=30))
    finish(schedule)

    # Saved through the model at 03:00, as the API saves it (a fresh row, then save()).
    schedule.refresh_from_db()
    schedule.db_cron = "30 3 * * *"
    schedule.save()
    Schedule.objects.filter(pk=schedule.pk).update(updated_at=SLOT + timedelta(hours=1))
    schedules_run_due(now=SLOT + timedelta(hours=1, minutes=30, seconds=30))

    backups = scheduled_backups(schedule)
    assert len(backups) == 2
    schedule.refresh_from_db()
    assert schedule.last_db_slot_at == utc(2026, 11, 20, 3, 30)


def test_a_frequency_preset_runs_its_cron(environment, database):
    schedule = make_schedule(environment, db_cron="", db_frequency="every-6-hours")

    schedules_run_due(now=utc(2026, 11, 20, 6, 0, 20))

    assert len(scheduled_backups(schedule)) == 1
    schedule.refresh_from_db()
    assert schedule.last_db_slot_at == utc(2026, 11, 20, 6)


def test_full_backups_follow_the_full_cron(environment, database):
    schedule = make_schedule(environment, db_cron="", full_cron="0 4 * * 0")

    schedules_run_due(now=utc(2026, 11, 22, 4, 0, 30))  # a Sunday

    (backup,) = scheduled_backups(schedule)
    assert backup.kind == BackupKind.FULL
    schedule.refresh_from_db()
    assert schedule.last_full_slot_at == utc(2026, 11, 22, 4)
    assert schedule.last_db_slot_at is None


def test_the_spring_forward_gap_runs_its_slot_once_at_the_end_of_the_gap(environment, database):
    # Europe/London skips 01:00-02:00 on 2026-03-29: 01:30 runs at 02:00 BST (01:00 UTC).
    schedule = make_schedule(
        environment, db_cron="30 1 * * *", timezone="Europe/London", saved_at=utc(2026, 3, 28, 12)
    )

    schedules_run_due(now=utc(2026, 3, 29, 0, 59))
    assert scheduled_backups(schedule) == []
    schedules_run_due(now=utc(2026, 3, 29, 1, 0, 30))
    finish(schedule)
    schedules_run_due(now=utc(2026, 3, 29, 1, 45))

    assert len(scheduled_backups(schedule)) == 1
    schedule.refresh_from_db()
    assert schedule.last_db_slot_at == utc(2026, 3, 29, 1)


def test_the_repeated_fall_back_hour_runs_its_slot_once(environment, database):
    # Europe/London repeats 01:00-02:00 on 2026-10-25: 01:30 BST is 00:30 UTC, and
    # 01:30 GMT (01:30 UTC) is the same wall time again.
    schedule = make_schedule(
        environment, db_cron="30 1 * * *", timezone="Europe/London", saved_at=utc(2026, 10, 24, 12)
    )

    schedules_run_due(now=utc(2026, 10, 25, 0, 30, 30))
    finish(schedule)
    schedules_run_due(now=utc(2026, 10, 25, 1, 30, 30))
    schedules_run_due(now=utc(2026, 10, 25, 3))

    assert len(scheduled_backups(schedule)) == 1
    schedule.refresh_from_db()
    assert schedule.last_db_slot_at == utc(2026, 10, 25, 0, 30)


def test_slots_are_counted_in_the_schedules_timezone(environment, database):
    # 02:00 in New York is 07:00 UTC in November.
    schedule = make_schedule(environment, timezone="America/New_York")

    schedules_run_due(now=utc(2026, 11, 20, 2, 0, 30))
    assert scheduled_backups(schedule) == []
    schedules_run_due(now=utc(2026, 11, 20, 7, 0, 30))
    assert len(scheduled_backups(schedule)) == 1


def test_two_ticks_that_read_the_schedule_at_once_claim_the_slot_once(schedule, monkeypatch):
    now = SLOT + timedelta(seconds=30)
    # The second scheduler read the schedules before the first claimed the slot.
    stale = list(runs._schedules())
    first = schedules_run_due(now=now)
    monkeypatch.setattr(runs, "_schedules", lambda: stale)
    second = schedules_run_due(now=now)

    assert len(first.started) == 1
    assert second.runs == []
    assert len(scheduled_backups(schedule)) == 1


def test_an_older_slot_is_never_claimed_after_a_newer_one(schedule, monkeypatch):
    stale = list(runs._schedules())
    schedules_run_due(now=SLOT + timedelta(days=1, seconds=30))
    finish(schedule)
    monkeypatch.setattr(runs, "_schedules", lambda: stale)
    late = schedules_run_due(now=SLOT + timedelta(seconds=30))

    assert late.runs == []
    assert len(scheduled_backups(schedule)) == 1


@pytest.mark.django_db(transaction=True)
def test_two_ticks_running_at_once_in_two_threads_start_one_backup(schedule, monkeypatch):
    # Both ticks compute the due slot before either claims it, then race to claim.
    barrier = threading.Barrier(2, timeout=10)
    compute = runs._due_sources

    def due_then_wait(*args):
        due = compute(*args)
        barrier.wait()
        return due

    monkeypatch.setattr(runs, "_due_sources", due_then_wait)
    results = []

    def tick():
        try:
            results.append(schedules_run_due(now=SLOT + timedelta(seconds=30)))
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(len(result.started) for result in results) == [0, 1]
    assert len(scheduled_backups(schedule)) == 1


def test_an_unexpected_error_leaves_the_slot_for_the_next_tick(schedule, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(runs, "backup_request", broken)
    result = schedules_run_due(now=SLOT + timedelta(seconds=30))

    assert "the database went away" in result.errors[0]
    schedule.refresh_from_db()
    assert schedule.last_db_slot_at is None
    monkeypatch.undo()
    assert len(schedules_run_due(now=SLOT + timedelta(seconds=90)).started) == 1


def test_a_backup_already_running_is_recorded_not_crashed_on(schedule, database):
    running = factories.BackupFactory(
        environment=schedule.environment, database=database, status=BackupStatus.IN_PROGRESS
    )

    result = schedules_run_due(now=SLOT + timedelta(seconds=30))

    (refused,) = result.refused
    assert "already running" in refused.error
    assert scheduled_backups(schedule) == []
    schedule.refresh_from_db()
    assert schedule.last_db_slot_at == SLOT  # consumed, not retried every minute
    running.refresh_from_db()
    assert running.status == BackupStatus.IN_PROGRESS


def test_an_environment_with_nothing_to_back_up_is_recorded(project, destination):
    empty = factories.EnvironmentFactory(project=project, name="Empty", slug="empty")
    make_schedule(empty)

    result = schedules_run_due(now=SLOT + timedelta(seconds=30))

    (refused,) = result.refused
    assert "no database" in refused.error


def test_a_broken_schedule_does_not_stop_the_others(environment, database, project):
    other_env = factories.EnvironmentFactory(project=project, name="Prod", slug="prod")
    factories.DatabaseFactory(environment=other_env, name="Prod db", slug="prod-db")
    broken = make_schedule(other_env)
    Schedule.objects.filter(pk=broken.pk).update(timezone="Mars/Olympus")
    schedule = make_schedule(environment)

    result = schedules_run_due(now=SLOT + timedelta(seconds=30))

    assert len(scheduled_backups(schedule)) == 1
    assert result.errors and "Mars/Olympus" in result.errors[0]


def test_each_organisations_schedule_backs_up_into_its_own_destinations(
    schedule, destination, other_organisation
):
    theirs_env = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation)
    )
    factories.DatabaseFactory(environment=theirs_env)
    their_destination = factories.DestinationFactory(organisation=other_organisation)
    theirs = make_schedule(theirs_env)

    schedules_run_due(now=SLOT + timedelta(seconds=30))

    (ours_backup,) = scheduled_backups(schedule)
    (their_backup,) = scheduled_backups(theirs)
    assert list(ours_backup.destinations.all()) == [destination]
    assert list(their_backup.destinations.all()) == [their_destination]
    assert their_backup.organisation == other_organisation


# --- interval rules (seed 001) ----------------------------------------------------------


def test_interval_rules_make_backups_that_show_the_rules(environment, database):
    schedule = make_schedule(
        environment,
        db_cron="",
        rules=[{"interval": "daily", "minute": [30], "hour": [2]}],
    )

    schedules_run_due(now=utc(2026, 11, 20, 2, 30, 10))

    (backup,) = scheduled_backups(schedule)
    assert backup.schedule_rules == [{"interval": "daily", "minute": [30], "hour": [2]}]
    rule = schedule.interval_rules.get()
    assert rule.last_slot_at == utc(2026, 11, 20, 2, 30)


def test_rules_due_at_the_same_slot_make_one_backup_listing_each(environment, database):
    schedule = make_schedule(
        environment,
        rules=[
            {"interval": "hourly", "minute": [0], "hour": None},
            {"interval": "weekly", "minute": [0], "hour": [2], "day": [4]},  # Friday
        ],
    )

    result = schedules_run_due(now=utc(2026, 11, 20, 2, 0, 10))  # a Friday

    (backup,) = scheduled_backups(schedule)
    assert sorted(rule["interval"] for rule in backup.schedule_rules) == ["hourly", "weekly"]
    assert len(result.started) == 1
    schedule.refresh_from_db()
    assert schedule.last_db_slot_at == SLOT  # the own cron fired too, without a rule


def test_a_full_interval_rule_makes_full_backups(environment, database):
    schedule = make_schedule(
        environment,
        db_cron="",
        rules=[{"interval": "weekly", "minute": [15], "hour": [1], "day": [6], "kind": "full"}],
    )

    schedules_run_due(now=utc(2026, 11, 22, 1, 15, 10))  # Sunday = day 6

    (backup,) = scheduled_backups(schedule)
    assert backup.kind == BackupKind.FULL
    assert backup.schedule_rules == [
        {"interval": "weekly", "minute": [15], "hour": [1], "day": [6]}
    ]


def test_a_rule_added_later_does_not_back_fill(environment, database):
    schedule = make_schedule(environment, db_cron="")
    # Saved (with its new rule) at 05:10, after that day's 05:00 slot of the rule.
    factories.IntervalRuleFactory(schedule=schedule, interval="daily", minute=[0], hour=[5])
    Schedule.objects.filter(pk=schedule.pk).update(updated_at=utc(2026, 11, 20, 5, 10))

    schedules_run_due(now=utc(2026, 11, 20, 5, 15))
    assert scheduled_backups(schedule) == []
    schedules_run_due(now=utc(2026, 11, 21, 5, 0, 5))
    assert len(scheduled_backups(schedule)) == 1


# --- missed runs ----------------------------------------------------------------------------


def missed_alert(schedule, kind="database") -> Alert | None:
    return Alert.objects.filter(dedup_key=missed_run_dedup_key(schedule, kind)).first()


def completed_backup(schedule, *, created_at, completed_at, kind=BackupKind.DATABASE, **extra):
    fields = {"trigger": BackupTrigger.SCHEDULED, **extra}
    return factories.BackupFactory(
        environment=schedule.environment,
        schedule=schedule,
        kind=kind,
        created_at=created_at,
        completed_at=completed_at,
        **fields,
    )


def test_a_slot_without_a_completed_backup_raises_a_missed_run_alert(schedule):
    missed = detect_missed_runs(now=SLOT + timedelta(minutes=61))

    assert [(m.kind, m.slot) for m in missed] == [("database", SLOT)]
    alert = missed_alert(schedule)
    assert alert.kind == AlertKind.SCHEDULE_MISSED
    assert alert.environment == schedule.environment
    assert alert.resolved_at is None
    assert "02:00" in alert.message


def test_no_alert_while_the_grace_period_runs(schedule):
    assert detect_missed_runs(now=SLOT + timedelta(minutes=59)) == []
    assert missed_alert(schedule) is None


def test_a_backup_completed_within_the_grace_period_meets_the_slot(schedule):
    completed_backup(
        schedule, created_at=SLOT + timedelta(seconds=20), completed_at=SLOT + timedelta(minutes=5)
    )

    assert detect_missed_runs(now=SLOT + timedelta(minutes=61)) == []
    assert missed_alert(schedule) is None


def test_a_failed_backup_does_not_meet_the_slot(schedule):
    completed_backup(
        schedule,
        created_at=SLOT + timedelta(seconds=20),
        completed_at=SLOT + timedelta(minutes=5),
        status=BackupStatus.FAILED,
    )

    assert len(detect_missed_runs(now=SLOT + timedelta(minutes=61))) == 1


def test_the_grace_period_is_a_setting(schedule, settings):
    settings.STRONGBOX_SCHEDULE_GRACE_MINUTES = 10

    assert len(detect_missed_runs(now=SLOT + timedelta(minutes=11))) == 1


def test_repeated_checks_count_one_alert(schedule):
    detect_missed_runs(now=SLOT + timedelta(minutes=61))
    detect_missed_runs(now=SLOT + timedelta(minutes=66))

    assert Alert.objects.filter(kind=AlertKind.SCHEDULE_MISSED).count() == 1
    assert missed_alert(schedule).occurrences == 2


def test_a_later_completed_scheduled_backup_resolves_the_alert(schedule):
    detect_missed_runs(now=SLOT + timedelta(minutes=61))
    next_slot = SLOT + timedelta(days=1)
    completed_backup(
        schedule,
        created_at=next_slot + timedelta(seconds=20),
        completed_at=next_slot + timedelta(minutes=5),
    )

    # Checked before the next slot's grace period ended: a later backup completed.
    assert detect_missed_runs(now=next_slot + timedelta(minutes=30)) == []
    assert missed_alert(schedule).resolved_at is not None


def test_a_manual_backup_does_not_stand_in_for_a_scheduled_one(schedule):
    completed_backup(
        schedule,
        created_at=SLOT + timedelta(seconds=20),
        completed_at=SLOT + timedelta(minutes=5),
        trigger=BackupTrigger.MANUAL,
    )

    assert len(detect_missed_runs(now=SLOT + timedelta(minutes=61))) == 1


def test_paused_and_new_schedules_are_not_blamed(environment, database, project):
    paused = make_schedule(environment, paused=True)
    other_env = factories.EnvironmentFactory(project=project, slug="fresh")
    fresh = make_schedule(other_env, saved_at=SLOT + timedelta(minutes=1))

    assert detect_missed_runs(now=SLOT + timedelta(minutes=61)) == []
    assert missed_alert(paused) is None
    assert missed_alert(fresh) is None


def test_the_tick_and_a_completed_backup_keep_the_check_quiet(schedule):
    (run,) = schedules_run_due(now=SLOT + timedelta(seconds=30)).started
    Backup.objects.filter(pk__in=run.backup_ids).update(
        status=BackupStatus.COMPLETED, completed_at=SLOT + timedelta(minutes=3)
    )
    # created_at is the real clock; make it the tick's.
    Backup.objects.filter(pk__in=run.backup_ids).update(created_at=SLOT + timedelta(seconds=30))

    assert detect_missed_runs(now=SLOT + timedelta(minutes=61)) == []
