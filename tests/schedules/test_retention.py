"""Grandfather-father-son retention: rules, safety rules, reasons and properties."""

from collections.abc import Hashable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schedules.retention import (
    BackupInfo,
    RetentionPlan,
    RetentionPolicy,
    Series,
    SeriesTotals,
    plan_retention,
)
from schedules.timing import ScheduleError

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def backup(
    backup_id: str,
    created_at: datetime,
    *,
    kind: str = "database",
    status: str = "completed",
    size: int = 100,
    **extra: object,
) -> BackupInfo:
    return BackupInfo(
        id=backup_id, created_at=created_at, kind=kind, status=status, size=size, **extra
    )


def hourly_backups(count: int, *, end: datetime = NOW, kind: str = "database") -> list[BackupInfo]:
    return [backup(f"h{i}", end - timedelta(hours=i), kind=kind) for i in range(count)]


def reasons(plan: RetentionPlan, backup_id: Hashable) -> list[str]:
    return plan.decision(backup_id).reasons


def kept_ids(plan: RetentionPlan) -> set[Hashable]:
    return {d.backup_id for d in plan.decisions if d.keep}


# --- the four rules ---------------------------------------------------------------------


def test_the_hourly_rule_keeps_the_newest_backup_of_each_of_the_last_n_hours() -> None:
    backups = [
        backup("a", utc(2026, 11, 20, 14, 45)),
        backup("b", utc(2026, 11, 20, 14, 15)),
        backup("c", utc(2026, 11, 20, 13, 50)),
        backup("d", utc(2026, 11, 20, 12, 5)),
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_hourly=2), "UTC", NOW)
    assert reasons(plan, "a") == ["hourly 2026-11-20T14", "newest"]
    assert reasons(plan, "b") == ["not kept by any rule"]
    assert reasons(plan, "c") == ["hourly 2026-11-20T13"]
    assert reasons(plan, "d") == ["not kept by any rule"]


def test_days_without_a_backup_do_not_use_up_the_daily_count() -> None:
    backups = [
        backup("mon", utc(2026, 11, 23, 2)),
        backup("sun", utc(2026, 11, 22, 2)),
        backup("wed", utc(2026, 11, 18, 2)),  # four empty days before this one
        backup("tue", utc(2026, 11, 17, 2)),
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_daily=3), "UTC", NOW)
    assert kept_ids(plan) == {"mon", "sun", "wed"}
    assert reasons(plan, "wed") == ["daily 2026-11-18"]


def test_the_weekly_rule_uses_iso_weeks_across_the_new_year() -> None:
    backups = [
        backup("fri", utc(2027, 1, 1, 2)),  # ISO 2026-W53, as is Thursday 31 December
        backup("thu", utc(2026, 12, 31, 2)),
        backup("sun", utc(2026, 12, 27, 2)),  # 2026-W52
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_weekly=2), "UTC", utc(2027, 1, 2))
    assert reasons(plan, "fri") == ["weekly 2026-W53", "newest"]
    assert reasons(plan, "thu") == ["not kept by any rule"]
    assert reasons(plan, "sun") == ["weekly 2026-W52"]


def test_the_monthly_rule_keeps_the_newest_backup_of_each_calendar_month() -> None:
    backups = [
        backup("nov", utc(2026, 11, 1, 2)),
        backup("oct-late", utc(2026, 10, 31, 2)),
        backup("oct-early", utc(2026, 10, 1, 2)),
        backup("sep", utc(2026, 9, 30, 2)),
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_monthly=2), "UTC", NOW)
    assert kept_ids(plan) == {"nov", "oct-late"}
    assert reasons(plan, "oct-late") == ["monthly 2026-10"]


def test_a_backup_kept_by_several_rules_lists_every_rule() -> None:
    plan = plan_retention(
        hourly_backups(3),
        RetentionPolicy(retain_hourly=1, retain_daily=1, retain_weekly=1, retain_monthly=1),
        "UTC",
        NOW,
    )
    assert reasons(plan, "h0") == [
        "hourly 2026-11-23T12",
        "daily 2026-11-23",
        "weekly 2026-W48",
        "monthly 2026-11",
        "newest",
    ]


# --- kinds and fallbacks -------------------------------------------------------------------


def test_database_and_full_backups_are_counted_separately_with_their_own_counts() -> None:
    backups = hourly_backups(5) + [
        backup(f"f{i}", NOW - timedelta(days=i, minutes=30), kind="full") for i in range(5)
    ]
    policy = RetentionPolicy(retain_daily=1, retain_db_hourly=3, retain_full_daily=3)
    plan = plan_retention(backups, policy, "UTC", NOW)
    # db: 3 hourly + daily 1 (fallback); full: 3 daily (its own count wins).
    assert kept_ids(plan) == {"h0", "h1", "h2", "f0", "f1", "f2"}
    assert reasons(plan, "f1") == ["daily 2026-11-22"]


def test_a_prefixed_count_of_zero_overrides_the_unprefixed_one() -> None:
    policy = RetentionPolicy(retain_hourly=5, retain_db_hourly=0)
    plan = plan_retention(hourly_backups(5), policy, "UTC", NOW)
    assert kept_ids(plan) == {"h0"}


def test_filesystem_backups_use_the_full_counts_as_a_series_of_their_own() -> None:
    backups = [
        backup("full", NOW - timedelta(hours=1), kind="full"),
        backup("files", NOW, kind="filesystem"),
        backup("files-old", NOW - timedelta(days=1), kind="filesystem"),
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_full_daily=1), "UTC", NOW)
    # The newer filesystem archive does not take the full backup's daily bucket.
    assert reasons(plan, "full") == ["daily 2026-11-23", "newest"]
    assert reasons(plan, "files") == ["daily 2026-11-23", "newest"]
    assert reasons(plan, "files-old") == ["not kept by any rule"]


# --- series: one per database, one per environment kind ---------------------------------


def daily_backups_of(source: str, days: int, *, hour: int = 2) -> list[BackupInfo]:
    return [
        backup(f"{source}-{n}", utc(2026, 11, 23, hour) - timedelta(days=n), source=source)
        for n in range(days)
    ]


def test_each_database_keeps_its_own_dailies_when_several_back_up_the_same_night() -> None:
    # Orders DB is dumped a minute after Users DB every night: by kind alone, Users DB
    # would win every daily bucket and Orders DB would lose its scheduled backups.
    backups = daily_backups_of("users", 10) + [
        replace(b, created_at=b.created_at + timedelta(minutes=1))
        for b in daily_backups_of("orders", 10)
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_db_daily=7), "UTC", NOW)
    assert kept_ids(plan) == {f"{db}-{n}" for db in ("users", "orders") for n in range(7)}
    assert reasons(plan, "orders-0") == ["daily 2026-11-23", "newest"]
    assert reasons(plan, "users-0") == ["daily 2026-11-23", "newest"]


def test_a_days_bound_is_measured_from_the_newest_backup_of_each_database() -> None:
    # Events DB stopped being backed up a month ago; its last week stays.
    stopped = [
        replace(b, created_at=b.created_at - timedelta(days=30))
        for b in daily_backups_of("events", 10)
    ]
    backups = daily_backups_of("users", 10) + stopped
    policy = RetentionPolicy(retain_daily=7, retain_daily_days=7)
    plan = plan_retention(backups, policy, "UTC", NOW)
    assert kept_ids(plan) == {f"{db}-{n}" for db in ("users", "events") for n in range(7)}


def test_the_floor_and_newest_hold_for_every_database() -> None:
    backups = daily_backups_of("users", 5) + daily_backups_of("orders", 5, hour=3)
    zeros = RetentionPolicy(retain_daily=0, floor=2)
    plan = plan_retention(backups, zeros, "UTC", NOW)
    assert kept_ids(plan) == {"users-0", "users-1", "orders-0", "orders-1"}
    assert reasons(plan, "users-1") == ["floor"]


def test_full_and_filesystem_backups_are_series_of_the_environment_whatever_their_source() -> None:
    backups = [
        backup("full-a", NOW, kind="full", source="users"),
        backup("full-b", NOW - timedelta(hours=1), kind="full", source="orders"),
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_full_daily=1), "UTC", NOW)
    assert kept_ids(plan) == {"full-a"}
    assert backups[1].series == Series("full") == Series("full", None)


def test_the_plan_totals_each_series() -> None:
    backups = (
        daily_backups_of("users", 4)
        + daily_backups_of("orders", 3, hour=3)
        + [backup(f"full-{n}", NOW - timedelta(days=n), kind="full", size=1000) for n in range(3)]
        + [backup("files", NOW, kind="filesystem", status="failed")]
    )
    plan = plan_retention(backups, RetentionPolicy(retain_daily=2), "UTC", NOW)
    assert plan.by_series == {
        Series("database", "users"): SeriesTotals(kept=2, deleted=2, bytes_freed=200),
        Series("database", "orders"): SeriesTotals(kept=2, deleted=1, bytes_freed=100),
        Series("full"): SeriesTotals(kept=2, deleted=1, bytes_freed=1000),
        Series("filesystem"): SeriesTotals(kept=1, deleted=0, bytes_freed=0),
    }


# --- age bounds ------------------------------------------------------------------------------


def test_a_days_bound_limits_the_rule_by_age_from_the_newest_backup() -> None:
    backups = [backup(f"d{i}", NOW - timedelta(days=i)) for i in range(10)]
    policy = RetentionPolicy(retain_daily=7, retain_daily_days=3)
    plan = plan_retention(backups, policy, "UTC", NOW)
    assert kept_ids(plan) == {"d0", "d1", "d2"}  # d3 is exactly 3 days old: not younger


def test_a_stopped_schedule_never_ages_its_last_backups_out() -> None:
    stopped = NOW - timedelta(days=365)
    backups = [backup(f"d{i}", stopped - timedelta(days=i)) for i in range(10)]
    policy = RetentionPolicy(retain_daily=7, retain_daily_days=7)
    plan = plan_retention(backups, policy, "UTC", NOW)
    assert kept_ids(plan) == {f"d{i}" for i in range(7)}


def test_days_without_a_count_keep_one_backup_per_bucket_within_the_days() -> None:
    plan = plan_retention(hourly_backups(72), RetentionPolicy(retain_daily_days=2), "UTC", NOW)
    # Backups 0-47 hours old span three dates (23rd, 22nd, 21st from 13:00).
    assert kept_ids(plan) == {"h0", "h13", "h37"}


def test_manual_backups_are_not_the_age_reference() -> None:
    backups = [
        backup("manual-today", NOW, manual=True),
        backup("scheduled", NOW - timedelta(days=30)),
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_daily=7, retain_daily_days=7), "UTC", NOW)
    assert reasons(plan, "scheduled") == ["daily 2026-10-24"]


# --- safety rules ------------------------------------------------------------------------------


def test_an_empty_policy_keeps_everything() -> None:
    plan = plan_retention(hourly_backups(5), RetentionPolicy(), "UTC", NOW)
    assert plan.deleted_count == 0
    assert reasons(plan, "h3") == ["no retention policy"]
    assert reasons(plan, "h0") == ["no retention policy", "newest"]


def test_an_empty_policy_still_honours_a_manual_backups_own_expiry() -> None:
    expired = backup("m", NOW - timedelta(days=9), manual=True, expires_at=NOW - timedelta(days=1))
    plan = plan_retention([*hourly_backups(2), expired], RetentionPolicy(), "UTC", NOW)
    assert reasons(plan, "m") == ["expired"]
    assert plan.deleted_count == 1


def test_a_series_without_rules_keeps_everything_while_another_series_is_pruned() -> None:
    backups = hourly_backups(3) + hourly_backups(3, kind="full", end=NOW - timedelta(minutes=5))
    backups = [replace(b, id=f"{b.kind}-{b.id}") for b in backups]
    plan = plan_retention(backups, RetentionPolicy(retain_db_hourly=1), "UTC", NOW)
    assert plan.deleted_count == 2  # database h1, h2
    assert reasons(plan, "full-h2") == ["no retention policy"]


def test_a_policy_of_zeros_still_keeps_the_newest_backup() -> None:
    zeros = RetentionPolicy(retain_hourly=0, retain_daily=0, retain_weekly=0, retain_monthly=0)
    plan = plan_retention(hourly_backups(5), zeros, "UTC", NOW)
    assert kept_ids(plan) == {"h0"}
    assert reasons(plan, "h0") == ["newest"]


def test_the_floor_keeps_good_backups_when_recent_runs_failed() -> None:
    backups = [backup(f"x{i}", NOW - timedelta(hours=i), status="failed") for i in range(3)]
    backups += [backup(f"ok{i}", NOW - timedelta(days=30 + i)) for i in range(5)]
    policy = RetentionPolicy(retain_hourly=1, floor=3)
    plan = plan_retention(backups, policy, "UTC", NOW)
    assert reasons(plan, "ok0") == ["hourly 2026-10-24T12", "newest"]
    assert reasons(plan, "ok1") == ["floor"]
    assert reasons(plan, "ok2") == ["floor"]
    assert reasons(plan, "ok3") == ["not kept by any rule"]
    assert reasons(plan, "x0") == ["failed less than 7 days ago"]


def test_protected_backups_are_kept_with_their_reason() -> None:
    backups = hourly_backups(3) + [
        backup("old", NOW - timedelta(days=90), protected="being restored"),
        backup("failed", NOW - timedelta(days=90), status="failed", protected="PITR window"),
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_hourly=1), "UTC", NOW)
    assert reasons(plan, "old") == ["being restored"]
    assert reasons(plan, "failed") == ["PITR window"]


def test_manual_backups_are_kept_until_their_own_expiry() -> None:
    backups = hourly_backups(2) + [
        backup("keep", NOW - timedelta(days=40), manual=True),
        backup("until", NOW - timedelta(days=40), manual=True, expires_at=NOW + timedelta(days=1)),
        backup("gone", NOW - timedelta(days=40), manual=True, expires_at=NOW - timedelta(days=1)),
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_hourly=1), "UTC", NOW)
    assert reasons(plan, "keep") == ["manual"]
    assert reasons(plan, "until") == ["manual"]
    assert reasons(plan, "gone") == ["expired"]
    assert plan.expires_at("until") == NOW + timedelta(days=1)


def test_a_manual_backup_does_not_take_a_scheduled_backups_bucket() -> None:
    backups = [
        backup("manual", NOW, manual=True),
        backup("scheduled", NOW - timedelta(hours=1)),
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_daily=1), "UTC", NOW)
    assert reasons(plan, "manual") == ["newest", "manual"]
    assert reasons(plan, "scheduled") == ["daily 2026-11-23"]


def test_an_expired_manual_backup_that_is_the_newest_is_kept() -> None:
    only = backup("only", NOW - timedelta(days=3), manual=True, expires_at=NOW - timedelta(days=1))
    plan = plan_retention([only], RetentionPolicy(retain_daily=1), "UTC", NOW)
    assert reasons(plan, "only") == ["newest"]


@pytest.mark.parametrize("status", ["scheduled", "in-progress", "aborting", "deleting"])
def test_running_backups_are_kept(status: str) -> None:
    backups = hourly_backups(2) + [backup("run", NOW - timedelta(days=30), status=status)]
    plan = plan_retention(backups, RetentionPolicy(retain_hourly=1), "UTC", NOW)
    assert reasons(plan, "run") == ["in progress"]


def test_failed_backups_go_after_the_failed_keep_days() -> None:
    backups = hourly_backups(1) + [
        backup("recent", NOW - timedelta(days=6), status="failed"),
        backup("old", NOW - timedelta(days=8), status="failed", size=7),
        backup("aborted", NOW - timedelta(days=8), status="aborted", size=5),
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_hourly=1), "UTC", NOW)
    assert reasons(plan, "recent") == ["failed less than 7 days ago"]
    assert reasons(plan, "old") == ["failed more than 7 days ago"]
    assert reasons(plan, "aborted") == ["aborted more than 7 days ago"]
    assert plan.bytes_freed == 12
    assert plan.expires_at("recent") == NOW + timedelta(days=1)


def test_deleted_backups_are_not_in_the_plan() -> None:
    backups = hourly_backups(1) + [backup("gone", NOW - timedelta(days=1), status="deleted")]
    plan = plan_retention(backups, RetentionPolicy(retain_hourly=1), "UTC", NOW)
    assert [d.backup_id for d in plan.decisions] == ["h0"]


def test_the_plan_counts_what_it_frees() -> None:
    plan = plan_retention(hourly_backups(10), RetentionPolicy(retain_hourly=4), "UTC", NOW)
    assert (plan.kept_count, plan.deleted_count, plan.bytes_freed) == (4, 6, 600)
    assert [d.backup_id for d in plan.decisions] == [f"h{i}" for i in range(10)]  # newest first
    assert len(plan.kept) == 4 and len(plan.deleted) == 6


def test_it_rejects_unknown_kinds_and_naive_times() -> None:
    with pytest.raises(ValueError, match="unknown backup kind"):
        plan_retention([backup("x", NOW, kind="tape")], RetentionPolicy(), "UTC", NOW)
    with pytest.raises(ValueError, match="aware"):
        plan_retention([], RetentionPolicy(), "UTC", datetime(2026, 11, 23))  # noqa: DTZ001


# --- expiry estimate ---------------------------------------------------------------------------


def test_expiry_is_the_latest_age_bound_of_the_rules_that_keep_it() -> None:
    policy = RetentionPolicy(retain_daily=7, retain_daily_days=7, retain_weekly_days=30)
    backups = [backup(f"d{i}", NOW - timedelta(days=i)) for i in range(10)]
    plan = plan_retention(backups, policy, "UTC", NOW)
    # d1 (Sunday 22nd) is daily and the newest of ISO week 47: weekly bound wins.
    assert plan.expires_at("d1") == NOW - timedelta(days=1) + timedelta(days=30)
    assert plan.expires_at("d2") == NOW - timedelta(days=2) + timedelta(days=7)
    assert plan.expires_at("d9") == NOW  # deleted now


def test_a_count_only_rule_gives_no_expiry() -> None:
    plan = plan_retention(hourly_backups(3), RetentionPolicy(retain_hourly=3), "UTC", NOW)
    assert plan.expires_at("h1") is None


# --- policy from the API ----------------------------------------------------------------------


def test_the_policy_reads_seed_003_camel_case_names() -> None:
    body = {"retainDbDaily": 7, "retainFullMonthly": 12, "retainHourlyDays": 2, "dbCron": "x"}
    policy = RetentionPolicy.from_api(body)
    assert policy.retain_db_daily == 7
    assert policy.retain_full_monthly == 12
    assert policy.retain_hourly_days == 2
    assert policy.retain_daily is None
    assert RetentionPolicy.from_api(policy.to_api()) == policy
    assert set(policy.to_api()) == {
        "retainHourly", "retainDaily", "retainWeekly", "retainMonthly",
        "retainDbHourly", "retainDbDaily", "retainDbWeekly", "retainDbMonthly",
        "retainFullHourly", "retainFullDaily", "retainFullWeekly", "retainFullMonthly",
        "retainHourlyDays", "retainDailyDays", "retainWeeklyDays", "retainMonthlyDays",
    }  # fmt: skip


@pytest.mark.parametrize("value", [-1, "7", 1.5, True])
def test_the_policy_rejects_bad_values_naming_the_field(value: object) -> None:
    with pytest.raises(ValueError, match="retainDbWeekly") as caught:
        RetentionPolicy.from_api({"retainDbWeekly": value})
    assert isinstance(caught.value, ScheduleError)
    assert caught.value.field == "retainDbWeekly"


def test_the_policy_rejects_negative_values_in_code_too() -> None:
    with pytest.raises(ValueError, match="floor"):
        RetentionPolicy(floor=-1)


# --- timezones and DST -------------------------------------------------------------------------


def test_the_repeated_london_hour_is_one_hourly_bucket() -> None:
    # 2026-10-25: 01:00-02:00 happens in BST (00:00-01:00 UTC) and again in GMT.
    backups = [
        backup("02:30 GMT", utc(2026, 10, 25, 2, 30)),
        backup("01:30 GMT", utc(2026, 10, 25, 1, 30)),
        backup("01:30 BST", utc(2026, 10, 25, 0, 30)),
        backup("00:30 BST", utc(2026, 10, 24, 23, 30)),
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_hourly=3), "Europe/London", NOW)
    assert reasons(plan, "02:30 GMT") == ["hourly 2026-10-25T02", "newest"]
    assert reasons(plan, "01:30 GMT") == ["hourly 2026-10-25T01"]
    assert reasons(plan, "01:30 BST") == ["not kept by any rule"]
    assert reasons(plan, "00:30 BST") == ["hourly 2026-10-25T00"]


def test_daily_buckets_follow_the_schedule_timezone() -> None:
    backups = [
        backup("a", utc(2026, 11, 20, 20)),  # 20th 12:00 in Los Angeles
        backup("b", utc(2026, 11, 20, 7)),  # 19th 23:00 in Los Angeles
        backup("c", utc(2026, 11, 19, 20)),  # 19th 12:00 in Los Angeles
    ]
    policy = RetentionPolicy(retain_daily=2)
    in_utc = plan_retention(backups, policy, "UTC", NOW)
    in_la = plan_retention(backups, policy, "America/Los_Angeles", NOW)
    assert kept_ids(in_utc) == {"a", "c"}
    assert kept_ids(in_la) == {"a", "b"}
    assert reasons(in_la, "b") == ["daily 2026-11-19"]


def test_a_daily_rule_across_the_london_clock_change_keeps_one_per_local_day() -> None:
    # Hourly backups from Saturday to Monday around the fall back; the 25th has 25 hours.
    backups = [
        backup(f"{t:%d %H:%M}", t)
        for t in (utc(2026, 10, 24) + timedelta(hours=h) for h in range(60))
    ]
    plan = plan_retention(backups, RetentionPolicy(retain_daily=3), "Europe/London", NOW)
    assert [d.backup_id for d in plan.kept] == ["26 11:00", "25 23:00", "24 22:00"]


# --- properties --------------------------------------------------------------------------------

COUNT_FIELDS = [
    f"retain_{prefix}{rule}"
    for prefix in ("", "db_", "full_")
    for rule in ("hourly", "daily", "weekly", "monthly")
]
DAYS_FIELDS = [f"retain_{rule}_days" for rule in ("hourly", "daily", "weekly", "monthly")]
STATUSES = ["completed"] * 6 + ["failed", "aborted", "in-progress", "scheduled", "deleted"]


SOURCES = ["orders", "users", "events", None]


def _backup(index: int, fields: tuple) -> BackupInfo:
    minutes, kind, status, size, manual, expires_at, protected, source = fields
    return BackupInfo(
        id=index,
        created_at=NOW - timedelta(minutes=minutes),
        kind=kind,
        status=status,
        size=size,
        manual=manual,
        expires_at=expires_at,
        protected=protected,
        source=source,
    )


backup_lists = st.lists(
    st.tuples(
        st.integers(0, 120 * 24 * 60),
        st.sampled_from(["database", "database", "full", "filesystem"]),
        st.sampled_from(STATUSES),
        st.integers(0, 1000),
        st.sampled_from([False, False, False, True]),
        st.sampled_from([None, None, NOW - timedelta(days=1), NOW + timedelta(days=1)]),
        st.sampled_from([None] * 9 + ["being restored"]),
        st.sampled_from(SOURCES),
    ),
    max_size=40,
).map(lambda rows: [_backup(index, row) for index, row in enumerate(rows)])


policies = st.builds(
    RetentionPolicy,
    **{name: st.none() | st.integers(0, 8) for name in COUNT_FIELDS},
    **{name: st.none() | st.integers(0, 60) for name in DAYS_FIELDS},
    floor=st.integers(0, 4),
    failed_keep_days=st.integers(0, 14),
)
zones = st.sampled_from(["UTC", "Europe/London", "America/Los_Angeles", "Australia/Lord_Howe"])
fast = settings(max_examples=200, deadline=None)


@fast
@given(backups=backup_lists, policy=policies, tz=zones)
def test_planning_the_survivors_again_deletes_nothing_more(
    backups: list[BackupInfo], policy: RetentionPolicy, tz: str
) -> None:
    plan = plan_retention(backups, policy, tz, NOW)
    survivors = [b for b in backups if b.status != "deleted" and plan.decision(b.id).keep]
    again = plan_retention(survivors, policy, tz, NOW)
    assert again.deleted_count == 0


@fast
@given(backups=backup_lists, policy=policies, tz=zones)
def test_every_backup_gets_one_decision_and_the_newest_completed_is_kept(
    backups: list[BackupInfo],
    policy: RetentionPolicy,
    tz: str,
) -> None:
    plan = plan_retention(backups, policy, tz, NOW)
    live = [b for b in backups if b.status != "deleted"]
    assert sorted(d.backup_id for d in plan.decisions) == sorted(b.id for b in live)
    assert all(d.reasons for d in plan.decisions)
    assert plan.bytes_freed == sum(b.size for b in live if not plan.decision(b.id).keep)
    completed = sorted(
        (b for b in live if b.status == "completed"), key=lambda b: (b.created_at, str(b.id))
    )
    if completed:
        assert plan.decision(completed[-1].id).keep
    for series in {b.series for b in completed}:
        of_series = [b for b in completed if b.series == series]
        for b in of_series[::-1][: max(policy.floor, 1)]:
            assert plan.decision(b.id).keep  # the floor, and newest, of every series
    for b in live:
        if b.protected:
            assert plan.decision(b.id).keep


@fast
@given(backups=backup_lists, policy=policies, tz=zones, data=st.data())
def test_raising_a_count_never_deletes_a_backup_that_was_kept(
    backups: list[BackupInfo],
    policy: RetentionPolicy,
    tz: str,
    data: st.DataObject,
) -> None:
    # None means "not set", not zero, so only fields that have a value are raised.
    raisable = [
        name for name in COUNT_FIELDS + DAYS_FIELDS + ["floor"] if getattr(policy, name) is not None
    ]
    name = data.draw(st.sampled_from(raisable))
    more = data.draw(st.integers(1, 5))
    before = plan_retention(backups, policy, tz, NOW)
    raised = replace(policy, **{name: getattr(policy, name) + more})
    after = plan_retention(backups, raised, tz, NOW)
    assert kept_ids(before) <= kept_ids(after)


# Histories of several databases, each with its own backup rhythm and a long tail.
multi_database_histories = st.lists(
    st.tuples(
        st.integers(0, 90 * 24 * 60),
        st.sampled_from(["database"] * 6 + ["full", "filesystem"]),
        st.sampled_from(STATUSES),
        st.integers(0, 1000),
        st.sampled_from([False] * 5 + [True]),
        st.sampled_from([None, None, NOW - timedelta(days=1), NOW + timedelta(days=1)]),
        st.sampled_from([None] * 19 + ["being restored"]),
        st.sampled_from(SOURCES),
    ),
    min_size=1,
    max_size=120,
).map(lambda rows: [_backup(index, row) for index, row in enumerate(rows)])


@fast
@given(backups=multi_database_histories, policy=policies, tz=zones)
def test_an_environments_plan_is_the_union_of_the_plans_of_its_series_alone(
    backups: list[BackupInfo], policy: RetentionPolicy, tz: str
) -> None:
    plan = plan_retention(backups, policy, tz, NOW)
    union: dict[Hashable, tuple] = {}
    totals: dict[Series, SeriesTotals] = {}
    for series in {b.series for b in backups}:
        alone = plan_retention([b for b in backups if b.series == series], policy, tz, NOW)
        for d in alone.decisions:
            union[d.backup_id] = (d.keep, d.reasons, d.expires_at)
        totals.update(alone.by_series)
    assert {d.backup_id: (d.keep, d.reasons, d.expires_at) for d in plan.decisions} == union
    assert plan.by_series == totals
    assert sum(t.kept for t in totals.values()) == plan.kept_count
    assert sum(t.deleted for t in totals.values()) == plan.deleted_count
    assert sum(t.bytes_freed for t in totals.values()) == plan.bytes_freed


@fast
@given(backups=multi_database_histories, policy=policies, tz=zones)
def test_no_series_ever_loses_its_newest_completed_backup(
    backups: list[BackupInfo], policy: RetentionPolicy, tz: str
) -> None:
    plan = plan_retention(backups, policy, tz, NOW)
    newest: dict[Series, BackupInfo] = {}
    for b in sorted(backups, key=lambda b: (b.created_at, str(b.id))):
        if b.status == "completed":
            newest[b.series] = b
    for b in newest.values():
        assert plan.decision(b.id).keep
        assert "newest" in plan.decision(b.id).reasons
