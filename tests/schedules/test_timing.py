"""Schedule arithmetic: cron, timezones, DST, presets and seed 001 interval rules."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.timing import (
    CRON_PRESETS,
    FREQUENCY_PRESETS,
    IntervalRule,
    ScheduleError,
    describe,
    describe_cron,
    frequency_to_cron,
    interval_rule_to_cron,
    next_runs,
    presets_with_next_runs,
    previous_run,
    validate_cron,
    validate_interval_rule,
    validate_interval_rules,
    validate_timezone,
)

LONDON = "Europe/London"
NEW_YORK = "America/New_York"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- cron and timezone validation -------------------------------------------------------


def test_it_accepts_a_five_field_cron_and_normalises_spaces() -> None:
    assert validate_cron("  0   2 * *  * ") == "0 2 * * *"


def test_it_expands_common_macros_to_five_fields() -> None:
    assert validate_cron("@daily") == "0 0 * * *"
    assert validate_cron("@hourly") == "0 * * * *"


def test_a_cron_that_fires_only_in_leap_years_is_valid() -> None:
    assert validate_cron("0 0 29 2 *") == "0 0 29 2 *"
    assert next_runs("0 0 29 2 *", "UTC", utc(2026, 11, 23), 1) == [utc(2028, 2, 29)]


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("", "required"),
        ("* * * *", "has 4 fields"),
        ("* * * * * *", "has 6 fields"),
        ("61 * * * *", "not a valid cron expression"),
        ("0 25 * * *", "not a valid cron expression"),
        ("H * * * *", "not standard cron"),
        ("every day", "has 2 fields"),
        ("0 0 30 2 *", "never runs"),
    ],
)
def test_it_rejects_invalid_cron_with_a_clear_message(expr: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        validate_cron(expr, field="dbCron")
    assert caught.value.field == "dbCron"
    assert fragment in caught.value.message


def test_schedule_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)


def test_it_accepts_iana_timezones_and_rejects_others() -> None:
    assert validate_timezone("Europe/London").key == "Europe/London"
    for bad in ("", "Mars/Olympus", "../etc/passwd", "GMT+25"):
        with pytest.raises(ScheduleError) as caught:
            validate_timezone(bad)
        assert caught.value.field == "timezone"


def test_it_maps_frequencies_to_cron() -> None:
    assert frequency_to_cron("hourly") == "0 * * * *"
    assert frequency_to_cron("daily") == "0 2 * * *"
    assert set(FREQUENCY_PRESETS) >= {"hourly", "daily", "weekly", "monthly"}
    with pytest.raises(ScheduleError) as caught:
        frequency_to_cron("fortnightly", field="dbFrequency")
    assert caught.value.field == "dbFrequency"
    assert "hourly" in caught.value.message


def test_every_preset_is_valid_and_described_as_it_says() -> None:
    for preset in CRON_PRESETS:
        assert validate_cron(preset.cron) == preset.cron
        assert preset.description


# --- next runs ------------------------------------------------------------------------


def test_next_runs_are_computed_in_the_schedule_timezone() -> None:
    runs = next_runs("0 2 * * *", NEW_YORK, utc(2026, 11, 23, 12), 2)
    # 02:00 EST is 07:00 UTC.
    assert runs == [utc(2026, 11, 24, 7), utc(2026, 11, 25, 7)]


def test_next_runs_are_strictly_after_the_given_time() -> None:
    assert next_runs("0 2 * * *", "UTC", utc(2026, 11, 23, 2), 1) == [utc(2026, 11, 24, 2)]


def test_next_runs_reject_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_runs("0 2 * * *", "UTC", datetime(2026, 11, 23), 1)  # noqa: DTZ001


def test_a_daily_run_in_the_london_spring_gap_runs_once_when_the_gap_ends() -> None:
    # 2026-03-29 01:00 GMT jumps to 02:00 BST: 01:30 does not exist that day.
    runs = next_runs("30 1 * * *", LONDON, utc(2026, 3, 28, 12), 3)
    assert runs == [utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30)]


def test_slots_inside_the_spring_gap_collapse_into_one_run() -> None:
    runs = next_runs("*/15 * * * *", LONDON, utc(2026, 3, 29, 0, 40), 4)
    assert runs == [
        utc(2026, 3, 29, 0, 45),  # 00:45 GMT
        utc(2026, 3, 29, 1, 0),  # 01:00-01:45 do not exist: one run at 02:00 BST
        utc(2026, 3, 29, 1, 15),  # 02:15 BST
        utc(2026, 3, 29, 1, 30),
    ]


def test_a_daily_run_in_the_london_repeated_hour_runs_once_at_the_first_occurrence() -> None:
    # 2026-10-25 02:00 BST falls back to 01:00 GMT: 01:30 happens twice.
    runs = next_runs("30 1 * * *", LONDON, utc(2026, 10, 24, 12), 2)
    assert runs == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_an_hourly_schedule_does_not_repeat_the_fall_back_hour() -> None:
    runs = next_runs("30 * * * *", LONDON, utc(2026, 10, 24, 23), 4)
    assert runs == [
        utc(2026, 10, 24, 23, 30),  # 00:30 BST
        utc(2026, 10, 25, 0, 30),  # 01:30 BST
        utc(2026, 10, 25, 2, 30),  # 02:30 GMT (01:30 GMT is the same wall time again)
        utc(2026, 10, 25, 3, 30),
    ]


def test_next_runs_from_inside_the_repeated_hour_skip_slots_that_already_ran() -> None:
    # 01:10 GMT is the second pass; 01:15-01:45 ran in the first pass (BST).
    runs = next_runs("*/15 * * * *", LONDON, utc(2026, 10, 25, 1, 10), 2)
    assert runs == [utc(2026, 10, 25, 2, 0), utc(2026, 10, 25, 2, 15)]


def test_new_york_spring_forward_and_fall_back_in_2026() -> None:
    # 2026-03-08 02:00 EST jumps to 03:00 EDT; 2026-11-01 02:00 EDT falls back to 01:00 EST.
    spring = next_runs("30 2 * * *", NEW_YORK, utc(2026, 3, 7, 12), 2)
    assert spring == [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]  # 03:00 EDT, then 02:30 EDT
    fall = next_runs("30 1 * * *", NEW_YORK, utc(2026, 10, 31, 12), 2)
    assert fall == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]  # 01:30 EDT, then EST


def test_a_noon_run_comes_25_hours_after_the_previous_one_across_fall_back() -> None:
    runs = next_runs("0 12 * * *", LONDON, utc(2026, 10, 23), 4)
    gaps = [b - a for a, b in zip(runs, runs[1:], strict=False)]
    assert gaps == [timedelta(hours=24), timedelta(hours=25), timedelta(hours=24)]


@settings(max_examples=200, deadline=None)
@given(
    after=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31)),  # noqa: DTZ001
    cron=st.sampled_from(["*/15 * * * *", "30 * * * *", "30 1 * * *", "0 2 * * 0", "0 */6 * * *"]),
    tz=st.sampled_from([LONDON, NEW_YORK, "Australia/Lord_Howe", "UTC"]),
)
def test_next_runs_are_increasing_and_previous_run_agrees(
    after: datetime, cron: str, tz: str
) -> None:
    after = after.replace(tzinfo=UTC)
    runs = next_runs(cron, tz, after, 4)
    assert len(runs) == 4
    assert all(run.tzinfo is UTC for run in runs)
    assert after < runs[0] and all(a < b for a, b in zip(runs, runs[1:], strict=False))
    # The run before each next run is the one before it; nothing in between.
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert previous_run(cron, tz, later - timedelta(seconds=1)) == earlier
        assert previous_run(cron, tz, later) == later
    prev = previous_run(cron, tz, after)
    assert prev is not None and prev <= after
    assert next_runs(cron, tz, prev, 1) == runs[:1]


# --- previous run ----------------------------------------------------------------------


def test_previous_run_includes_a_slot_exactly_at_the_given_time() -> None:
    assert previous_run("0 2 * * *", "UTC", utc(2026, 11, 23, 2)) == utc(2026, 11, 23, 2)


def test_a_worker_down_for_days_sees_one_due_run_not_one_per_missed_slot() -> None:
    last_run = utc(2026, 11, 20, 2)
    restarted = utc(2026, 11, 23, 9, 17)
    due = previous_run("0 2 * * *", "UTC", restarted)
    assert due == utc(2026, 11, 23, 2)
    assert due > last_run  # one run is due now, whatever was missed before


def test_previous_run_in_the_second_pass_of_the_repeated_hour_is_the_last_first_pass_slot() -> None:
    # 01:10 GMT: the latest slot that ran was 01:45 BST (00:45 UTC), not 01:00.
    assert previous_run("*/15 * * * *", LONDON, utc(2026, 10, 25, 1, 10)) == utc(
        2026, 10, 25, 0, 45
    )


# --- presets -----------------------------------------------------------------------------


def test_presets_come_with_next_runs_in_the_requested_timezone() -> None:
    presets = presets_with_next_runs(NEW_YORK, utc(2026, 11, 23, 12), count=2)
    daily = next(p for p in presets if p["name"] == "daily")
    assert daily == {
        "name": "daily",
        "cron": "0 2 * * *",
        "description": "Every day at 02:00",
        "nextRuns": ["2026-11-24T02:00:00-05:00", "2026-11-25T02:00:00-05:00"],
    }
    assert [p["name"] for p in presets] == [p.name for p in CRON_PRESETS]
    assert all(len(p["nextRuns"]) == 2 for p in presets)


# --- descriptions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        ("* * * * *", "Every minute"),
        ("*/5 * * * *", "Every 5 minutes"),
        ("0 * * * *", "Every hour, on the hour"),
        ("15,45 * * * *", "Every hour at minute 15 and 45"),
        ("0 */6 * * *", "Every 6 hours, on the hour"),
        ("0 2 * * *", "Every day at 02:00"),
        ("0,30 2,14 * * *", "Every day at 02:00, 02:30, 14:00 and 14:30"),
        ("0 3 * * 0", "Every Sunday at 03:00"),
        ("0 3 * * 7", "Every Sunday at 03:00"),
        ("0 3 * * 1-5", "Every weekday at 03:00"),
        ("30 18 * * 0,5", "Every Friday and Sunday at 18:30"),
        ("0 4 1 * *", "On the 1st of every month at 04:00"),
        ("0 4 1,15 * *", "On the 1st and 15th of every month at 04:00"),
        ("0 0 1 1 *", "0 0 1 1 *"),
        ("not cron", "not cron"),
    ],
)
def test_it_describes_common_cron_shapes(expr: str, text: str) -> None:
    assert describe_cron(expr) == text


# --- seed 001 interval rules --------------------------------------------------------------


def test_it_accepts_the_seed_example_and_converts_monday_based_days_to_cron() -> None:
    rule = validate_interval_rule({"interval": "weekly", "minute": [30], "hour": [18], "day": [4]})
    assert rule == IntervalRule(interval="weekly", minute=[30], hour=[18], day=[4])
    assert interval_rule_to_cron(rule) == "30 18 * * 5"  # seed 4 = Friday = cron 5
    assert describe(rule) == "Every Friday at 18:30"


def test_seed_sunday_becomes_cron_zero() -> None:
    rule = IntervalRule(interval="weekly", minute=[0], hour=[3], day=[6, 0])
    assert interval_rule_to_cron(rule) == "0 3 * * 0,1"


def test_hourly_and_daily_rules_convert_to_cron() -> None:
    hourly = validate_interval_rule({"interval": "hourly", "minute": [45, 15, 15]})
    assert hourly.minute == [15, 45]
    assert interval_rule_to_cron(hourly) == "15,45 * * * *"
    daily = validate_interval_rule({"interval": "daily", "minute": [0], "hour": [2, 14]})
    assert interval_rule_to_cron(daily) == "0 2,14 * * *"
    assert describe(daily) == "Every day at 02:00 and 14:00"


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"interval": "monthly", "minute": [0]}, "schedules[0].interval", "hourly, daily, weekly"),
        ({"interval": "hourly"}, "schedules[0].minute", "required"),
        ({"interval": "hourly", "minute": []}, "schedules[0].minute", "required"),
        ({"interval": "hourly", "minute": [60]}, "schedules[0].minute", "0 to 59"),
        ({"interval": "hourly", "minute": [True]}, "schedules[0].minute", "0 to 59"),
        ({"interval": "hourly", "minute": "0"}, "schedules[0].minute", "array"),
        ({"interval": "hourly", "minute": [0], "hour": [1]}, "schedules[0].hour", "not available"),
        ({"interval": "daily", "minute": [0]}, "schedules[0].hour", "required for daily"),
        ({"interval": "daily", "minute": [0], "hour": [24]}, "schedules[0].hour", "0 to 23"),
        (
            {"interval": "daily", "minute": [0], "hour": [1], "day": [1]},
            "schedules[0].day",
            "not available for daily",
        ),
        ({"interval": "hourly", "minute": [0], "day": [1]}, "schedules[0].day", "not available"),
        ({"interval": "weekly", "minute": [0], "hour": [1]}, "schedules[0].day", "required"),
        (
            {"interval": "weekly", "minute": [0], "hour": [1], "day": [7]},
            "schedules[0].day",
            "0 to 6",
        ),
        ({"interval": "hourly", "minute": [0], "minutes": [1]}, "schedules[0].minutes", "Unknown"),
    ],
)
def test_it_rejects_rules_the_seed_does_not_allow_naming_the_field(
    data: dict, field: str, fragment: str
) -> None:
    with pytest.raises(ScheduleError) as caught:
        validate_interval_rules([data])
    assert caught.value.field == field
    assert fragment in caught.value.message


def test_it_allows_one_rule_per_interval() -> None:
    rules = [{"interval": "hourly", "minute": [0]}, {"interval": "hourly", "minute": [30]}]
    with pytest.raises(ScheduleError) as caught:
        validate_interval_rules(rules)
    assert caught.value.field == "schedules[1].interval"


def test_interval_rule_crons_fire_when_the_seed_says() -> None:
    rule = validate_interval_rule({"interval": "weekly", "minute": [30], "hour": [18], "day": [0]})
    (run,) = next_runs(interval_rule_to_cron(rule), "UTC", utc(2026, 11, 23), 1)
    assert run == utc(2026, 11, 23, 18, 30)
    assert run.weekday() == 0  # Monday, as seed 001 numbers it
