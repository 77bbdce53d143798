"""``Schedule.next_run``: the next run a page shows, the earliest over the schedule's own
crons and its interval rules, in the schedule's timezone."""

from datetime import UTC, datetime

import pytest

from tests import factories

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_it_is_the_earliest_of_the_database_and_full_crons(environment):
    schedule = factories.ScheduleFactory(
        environment=environment, db_cron="0 2 * * *", full_frequency="every-6-hours"
    )
    assert schedule.next_run(NOW) == datetime(2026, 3, 10, 18, 0, tzinfo=UTC)


def test_an_interval_rule_that_comes_sooner_wins(environment):
    schedule = factories.ScheduleFactory(environment=environment, db_cron="0 2 * * *")
    factories.IntervalRuleFactory(schedule=schedule, interval="daily", minute=[15], hour=[13])
    assert schedule.next_run(NOW) == datetime(2026, 3, 10, 13, 15, tzinfo=UTC)


def test_it_follows_the_schedules_timezone(environment):
    schedule = factories.ScheduleFactory(
        environment=environment, db_cron="0 14 * * *", timezone="Europe/Berlin"
    )
    assert schedule.next_run(NOW) == datetime(2026, 3, 10, 13, 0, tzinfo=UTC)


def test_a_cron_that_cannot_run_is_skipped_and_the_others_still_count(environment):
    schedule = factories.ScheduleFactory(
        environment=environment, db_cron="not a cron", full_cron="30 20 * * *"
    )
    assert schedule.next_run(NOW) == datetime(2026, 3, 10, 20, 30, tzinfo=UTC)


def test_a_schedule_without_crons_has_no_next_run(environment):
    schedule = factories.ScheduleFactory(environment=environment, db_cron="")
    assert schedule.next_run(NOW) is None
