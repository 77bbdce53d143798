"""Reads of schedules: the schedule of an environment, its next runs, the retention preview."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from backups.models import Backup, BackupKind, BackupStatus, BackupTrigger
from backups.selectors import backups_for_environment
from config.errors import InvalidInput, NotFound
from organizations.models import Environment
from schedules import timing
from schedules.models import RETENTION_FIELDS, Schedule
from schedules.retention import BackupInfo, RetentionPlan, RetentionPolicy, plan_retention

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
    """Next runs of each kind in the schedule's timezone (empty when disabled or paused)."""
    now = now or timezone.now()
    runs: dict[str, list[datetime]] = {"db": [], "full": []}
    if not schedule.enabled or schedule.paused:
        return runs
    for kind in runs:
        cron = schedule_cron(schedule, kind)
        if cron:
            runs[kind] = timing.next_runs(cron, schedule.timezone, now, count)
    return runs


def policy_of(schedule: Schedule | None) -> RetentionPolicy:
    if schedule is None:
        return RetentionPolicy()
    values = {name: getattr(schedule, name) for name in RETENTION_FIELDS}
    return RetentionPolicy(**values, floor=max(schedule.retention_floor, 1))


def _backup_info(backup: Backup, protected: set) -> BackupInfo:
    return BackupInfo(
        id=backup.pk,
        created_at=backup.created_at,
        kind=_SERIES.get(backup.kind, backup.kind),
        status=backup.status,
        size=backup.size or 0,
        manual=backup.trigger != BackupTrigger.SCHEDULED,
        expires_at=backup.expires_at,
        protected="being restored" if backup.pk in protected else None,
    )


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
    from restores.models import Restore

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
    backups = {
        b.pk: b
        for b in backups_for_environment(
            organisation=environment.project.organisation, environment=environment
        ).exclude(status=BackupStatus.DELETED)
    }
    protected = set(
        Restore.objects.filter(
            backup_id__in=list(backups), status__in=["scheduled", "in-progress"]
        ).values_list("backup_id", flat=True)
    )
    plan = plan_retention(
        [_backup_info(b, protected) for b in backups.values()],
        policy,
        zone,
        now or timezone.now(),
    )
    return RetentionPreview(plan=plan, backups=backups, policy=policy, timezone=zone.key)


def vars_of(policy: RetentionPolicy) -> dict:
    return {name: getattr(policy, name) for name in policy.__dataclass_fields__}
