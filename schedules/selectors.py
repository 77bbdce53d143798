"""Reads of schedules: the schedule of an environment, its next runs, the retention preview."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from backups.models import Backup
from config.errors import InvalidInput, NotFound
from organizations.models import Database, Environment, Organisation
from schedules import timing
from schedules.enforcement import retention_plan_for
from schedules.models import RETENTION_FIELDS, Schedule
from schedules.retention import Decision, RetentionPlan, RetentionPolicy, SeriesTotals

ENVIRONMENT_SERIES_NAME = "Full and files backups"
REMOVED_DATABASE_NAME = "Removed database"


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


def next_run_by_environment(*, organisation: Organisation, now: datetime) -> dict:
    """Environment id -> the next run of its schedule, for the enabled, unpaused schedules
    of the organisation's environments."""
    schedules = Schedule.objects.filter(
        environment__project__organisation=organisation, enabled=True, paused=False
    ).prefetch_related("interval_rules")
    return {schedule.environment_id: schedule.next_run(now) for schedule in schedules}


def policy_of(schedule: Schedule | None) -> RetentionPolicy:
    if schedule is None:
        return RetentionPolicy()
    values = {name: getattr(schedule, name) for name in RETENTION_FIELDS}
    return RetentionPolicy(**values, floor=max(schedule.retention_floor, 1))


@dataclass(frozen=True)
class SourceTotals:
    """A preview's totals for one database's backups (``scope`` "database"), or for the
    environment's own full and files backups, two series counted together ("environment").

    ``database`` is None for the environment, and for database backups whose database
    row is gone (each such backup was planned as that series, one of its own).
    """

    scope: str
    database: Database | None
    name: str
    kept: int
    deleted: int
    bytes_freed: int

    @property
    def database_id(self) -> str | None:
        return str(self.database.pk) if self.database else None


@dataclass
class RetentionPreview:
    """A plan with what the preview shows around it: ``plan.decisions`` are every backup's,
    newest first, and the totals cover all of them; ``retention_preview_rows`` reads the
    backups of one page of them."""

    plan: RetentionPlan
    policy: RetentionPolicy
    timezone: str
    by_database: list[SourceTotals]


@dataclass(frozen=True, slots=True)
class PreviewRow:
    """One decision of a preview's page with its backup (a few columns and its database)."""

    decision: Decision
    backup: Backup


# What a preview row shows of its backup; nothing else is read.
_PREVIEW_COLUMNS = (
    "name",
    "kind",
    "status",
    "trigger",
    "size",
    "created_at",
    "database_id",
    "database__name",
)


def retention_preview_rows(
    *, environment: Environment, decisions: Sequence[Decision]
) -> list[PreviewRow]:
    """The backups of ``decisions`` (one page of a plan: the plan holds every backup's),
    read in one query, in the decisions' order."""
    ids = [decision.backup_id for decision in decisions]
    # The environment is the caller's already (looked up in its organisation).
    backups = (
        Backup.objects.filter(environment=environment, pk__in=ids)
        .select_related("database")
        .only(*_PREVIEW_COLUMNS)
    )
    by_id = {str(backup.pk): backup for backup in backups}
    return [PreviewRow(d, by_id[d.backup_id]) for d in decisions if d.backup_id in by_id]


def retention_totals_by_database(
    *, environment: Environment, plan: RetentionPlan
) -> list[SourceTotals]:
    """The plan's totals per database of the environment (by name; a database without
    backups shows zeros), then backups of a removed database and the environment's full and
    files backups, each if there are any."""
    named = {str(db.pk): db for db in Database.objects.filter(environment=environment)}
    strays = [s.source for s in plan.by_series if s.kind == "database" and s.source not in named]
    named.update({str(db.pk): db for db in Database.objects.filter(pk__in=strays)})
    by_source: dict[tuple[str, str | None], SeriesTotals] = {}
    for series, totals in plan.by_series.items():
        if series.kind != "database":
            key = ("environment", None)
        else:
            key = ("database", series.source if series.source in named else None)
        into = by_source.setdefault(key, SeriesTotals())
        into.kept += totals.kept
        into.deleted += totals.deleted
        into.bytes_freed += totals.bytes_freed
    lines = []
    for pk, database in sorted(named.items(), key=lambda item: (item[1].name, item[0])):
        t = by_source.get(("database", pk), SeriesTotals())
        lines.append(
            SourceTotals("database", database, database.name, t.kept, t.deleted, t.bytes_freed)
        )
    for scope, pk, name in (
        ("database", None, REMOVED_DATABASE_NAME),
        ("environment", None, ENVIRONMENT_SERIES_NAME),
    ):
        if (scope, pk) in by_source:
            t = by_source[(scope, pk)]
            lines.append(SourceTotals(scope, None, name, t.kept, t.deleted, t.bytes_freed))
    return lines


def retention_preview(
    *,
    environment: Environment,
    overrides: dict,
    tz: str | None = None,
    now: datetime | None = None,
) -> RetentionPreview:
    """What the schedule's retention, with ``overrides`` (seed 003 ``retain*`` names)
    applied, would delete and keep now, with its totals. Nothing is deleted, and no
    backup is read beyond the columns the plan needs: a page of rows to show is
    ``retention_preview_rows(decisions=preview.plan.decisions[offset : offset + limit])``."""

    # Its retention fields and timezone are all the preview needs of it.
    schedule = Schedule.objects.filter(environment=environment).first()
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
    return RetentionPreview(
        plan=plan,
        policy=policy,
        timezone=zone.key,
        by_database=retention_totals_by_database(environment=environment, plan=plan),
    )


def vars_of(policy: RetentionPolicy) -> dict:
    return {name: getattr(policy, name) for name in policy.__dataclass_fields__}
