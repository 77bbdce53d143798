"""Reads of schedules: the schedule of an environment, its next runs, the retention preview."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from backups.models import BackupKind
from backups.selectors import backups_for_environment
from config.errors import InvalidInput, NotFound
from organizations.models import Environment
from schedules import timing
from schedules.enforcement import retention_plan_for
from schedules.models import RETENTION_FIELDS, Schedule
from schedules.retention import RetentionPlan, RetentionPolicy

# A PostgreSQL base backup belongs to the database series.
_SERIES = {BackupKind.BASE: BackupKind.DATABASE}


def schedule_find(*, environment: Environment) -> Schedule | None:
    return (
        Schedule.objects.filter(environment=environment)
        .prefetch_related("destinations", "interval_rules")
        .first()
    )


def schedule_get(*, environment: Environment) -> Schedule:
    """The environment's schedule; ``NotFound`` when it has none."""
    schedule = schedule_find(environment=environment)
    if schedule is None:
        raise NotFound("This environment has no backup schedule.")
    return schedule


def schedule_cron(schedule: Schedule, kind: str) -> str:
    """The effective cron of ``db`` or ``full`` backups: the cron, else the frequency's."""
    cron = getattr(schedule, f"{kind}_cron")
    frequency = getattr(schedule, f"{kind}_frequency")
    if cron:
        return cron
    if frequency in timing.FREQUENCY_PRESETS:
        return timing.FREQUENCY_PRESETS[frequency]
    return ""


def schedule_next_runs(
    schedule: Schedule, *, now: datetime | None = None, count: int = 1
) -> dict[str, list[datetime]]:
    """Next runs of each kind, cron and interval rules together (empty when disabled or
    paused); computed in the schedule's timezone by the model."""
    now = now or timezone.now()
    runs: dict[str, list[datetime]] = {"db": [], "full": []}
    if not schedule.enabled or schedule.paused:
        return runs
    for api_kind, model_kind in (("db", "database"), ("full", "full")):
        runs[api_kind] = schedule.next_runs(model_kind, count, now)
    return runs


def policy_of(schedule: Schedule | None) -> RetentionPolicy:
    if schedule is None:
        return RetentionPolicy()
    values = {name: getattr(schedule, name) for name in RETENTION_FIELDS}
    return RetentionPolicy(**values, floor=max(schedule.retention_floor, 1))


@dataclass
class RetentionPreview:
    plan: RetentionPlan
    backups: dict  # id -> Backup
    policy: RetentionPolicy
    timezone: str


def retention_preview(
    *,
    environment: Environment,
    overrides: dict,
    tz: str | None = None,
    now: datetime | None = None,
) -> RetentionPreview:
    """What the schedule's retention, with ``overrides`` (seed 003 ``retain*`` names)
    applied, would delete and keep now. Nothing is deleted."""

    schedule = schedule_find(environment=environment)
    current = policy_of(schedule).to_api()
    try:
        policy = RetentionPolicy.from_api({**current, **overrides})
        zone_name = tz or (schedule.timezone if schedule else "UTC")
        zone = timing.validate_timezone(zone_name)
    except timing.ScheduleError as exc:
        raise InvalidInput(exc.message, fields={exc.field: [exc.message]}) from None
    if schedule is not None:
        policy = RetentionPolicy(**{**vars_of(policy), "floor": max(schedule.retention_floor, 1)})
    # The same plan enforcement would carry out (schedules.enforcement), so what the
    # preview shows is what would be deleted.
    plan = retention_plan_for(environment=environment, policy=policy, now=now, tz=zone.key)
    wanted = [decision.backup_id for decision in plan.decisions]
    backups = {
        str(b.pk): b
        for b in backups_for_environment(
            organisation=environment.project.organisation, environment=environment
        ).filter(pk__in=wanted)
    }
    return RetentionPreview(plan=plan, backups=backups, policy=policy, timezone=zone.key)


def vars_of(policy: RetentionPolicy) -> dict:
    return {name: getattr(policy, name) for name in policy.__dataclass_fields__}
