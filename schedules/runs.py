"""Running schedules: the every-minute tick and missed-run detection.

The tick (``schedules_run_due``) is called by the django-q2 periodic task
``schedules.tasks.run_due_schedules`` once a minute. It reads every schedule from the
database on each call, so a change made through the API or the admin is picked up at
the next tick without restarting the worker.

For each schedule and each kind it produces ("database", "full") the sources of slots
are the schedule's own cron (``dbCron``/``dbFrequency``, ``fullCron``/``fullFrequency``)
and its seed 001 interval rules of that kind. A source is due when its latest slot at
or before ``now`` is later than the last slot it ran for (see ``schedules.models
.due_slot``): so a slot that came due while the worker was down runs once on start,
not once per missed slot, and a cron that never ran starts counting from the
schedule's last change (``Schedule.slot_anchor``), so nothing is back-filled.

Claiming. Each due source is claimed with a conditional UPDATE of its last-slot field
(``last < slot``), and only the tick whose UPDATE changed the row runs it: two
schedulers or a duplicated task never run a slot twice, and an older slot can never be
claimed after a newer one. The claims and the backup request share one transaction, so
a tick that dies in between leaves the slot for the next tick.

The sources of one kind due in the same tick make one backup request, whose
``schedule_rules`` lists the interval rules that fired (seed 001 shows them on the
backup). A request refused by the backup service (a backup of the environment is
already running: ``Conflict``; nothing to back up: ``InvalidInput``) is logged and
returned in the tick's result; the slot stays consumed, and missed-run detection
reports it if no scheduled backup completes in its window.

Paused or disabled schedules produce nothing; the tick still moves their last slots
forward (without running them), so resuming a schedule does not back-fill the slots
it slept through.

Missed runs (``detect_missed_runs``) are state, as in healthchecks: for each running
schedule and kind, the latest slot whose grace period (``STRONGBOX_SCHEDULE_GRACE_MINUTES``,
default 60) has ended is checked. It was met when a scheduled backup of that kind
created at or after the slot completed within the grace period, or when any later
scheduled backup of that kind has completed since; otherwise a ``schedule_missed``
alert is raised (one open alert per schedule and kind, de-duplicated by the alerts
service), and it is resolved by the first check that finds the slot met. Slots before
the schedule's last change are not checked (a schedule just resumed or edited is not
blamed for what it was told not to do).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alerts.models import AlertKind, Severity
from alerts.services import alert_raise, alert_resolve
from backups.models import Backup, BackupStatus, BackupTrigger
from backups.services import backup_request
from config.errors import ApplicationError
from pitr.base import base_backup_request
from schedules.models import IntervalRule, Schedule
from schedules.timing import ScheduleError, validate_timezone

logger = logging.getLogger(__name__)


@dataclass
class Run:
    """One backup request made (or refused) by a tick."""

    schedule_id: object
    kind: str
    slot: datetime
    rules: list[dict] = field(default_factory=list)
    backup_ids: list = field(default_factory=list)
    error: str = ""


@dataclass
class TickResult:
    """What one tick did, for the task's result and for tests."""

    runs: list[Run] = field(default_factory=list)
    skipped: int = 0  # slots of paused/disabled schedules moved forward without a run
    errors: list[str] = field(default_factory=list)  # unreadable schedules, failed runs

    @property
    def started(self) -> list[Run]:
        return [run for run in self.runs if not run.error]

    @property
    def refused(self) -> list[Run]:
        return [run for run in self.runs if run.error]


def _claim(queryset, field_name: str, slot: datetime) -> bool:
    """Move ``field_name`` forward to ``slot``; True only for the caller that moved it."""
    newer = Q(**{f"{field_name}__isnull": True}) | Q(**{f"{field_name}__lt": slot})
    return queryset.filter(newer).update(**{field_name: slot}) == 1


@dataclass
class _Due:
    slot: datetime
    rule: IntervalRule | None  # None: the schedule's own cron

    def claim(self, schedule: Schedule, kind: str, *, to_run: bool) -> bool:
        """Claim the slot; ``to_run`` also requires the schedule to be enabled and unpaused
        as committed, so a pause that races with the tick wins."""
        if self.rule is None:
            rows = Schedule.objects.filter(pk=schedule.pk)
            if to_run:
                rows = rows.filter(enabled=True, paused=False)
            return _claim(rows, schedule.slot_field(kind), self.slot)
        rows = IntervalRule.objects.filter(pk=self.rule.pk)
        if to_run:
            rows = rows.filter(schedule__enabled=True, schedule__paused=False)
        return _claim(rows, "last_slot_at", self.slot)


def _due_sources(schedule: Schedule, kind: str, now: datetime) -> list[_Due]:
    due = []
    slot = schedule.due_slot(kind, now)
    if slot is not None:
        due.append(_Due(slot, None))
    for rule in schedule.rules_for(kind):
        slot = rule.due_slot(now)
        if slot is not None:
            due.append(_Due(slot, rule))
    return due


def _schedules():
    return Schedule.objects.select_related("environment__project__organisation").prefetch_related(
        "interval_rules", "destinations"
    )


def schedules_run_due(*, now: datetime | None = None) -> TickResult:
    """Run every slot that came due since the last tick (see the module docstring)."""
    now = now or timezone.now()
    result = TickResult()
    for schedule in _schedules():
        for kind in Schedule.KINDS:
            try:
                due = _due_sources(schedule, kind, now)
            except ScheduleError as exc:
                # A row the API would not have accepted (edited by hand?) must not stop
                # the other schedules.
                logger.error("schedule %s: cannot compute %s slots: %s", schedule.pk, kind, exc)
                result.errors.append(f"{schedule.pk} {kind}: {exc}")
                continue
            if not due:
                continue
            if not schedule.enabled or schedule.paused:
                result.skipped += sum(source.claim(schedule, kind, to_run=False) for source in due)
                continue
            try:
                run = _run(schedule, kind, due)
            except Exception as exc:
                # The claims rolled back with the request, so the next tick tries again;
                # the other schedules still run now.
                logger.exception("schedule %s: the %s run failed", schedule.pk, kind)
                result.errors.append(f"{schedule.pk} {kind}: {exc}")
                continue
            if run is not None:
                result.runs.append(run)
    return result


def _run(schedule: Schedule, kind: str, due: list[_Due]) -> Run | None:
    with transaction.atomic():
        claimed = [source for source in due if source.claim(schedule, kind, to_run=True)]
        if not claimed:
            return None  # another tick ran these slots
        rules = [source.rule.as_seed() for source in claimed if source.rule is not None]
        run = Run(
            schedule_id=schedule.pk, kind=kind, slot=max(s.slot for s in claimed), rules=rules
        )
        try:
            backups = backup_request(
                environment=schedule.environment,
                kind=kind,
                trigger=BackupTrigger.SCHEDULED,
                schedule=schedule,
                schedule_rules=rules,
            )
        except ApplicationError as exc:
            # The claims stay: the slot is consumed, not retried every minute.
            run.error = exc.message
            logger.warning(
                "schedule %s: the %s backup of %s due at %s was not started: %s",
                schedule.pk,
                kind,
                schedule.environment,
                run.slot.isoformat(),
                exc.message,
            )
            return run
        run.backup_ids = [backup.pk for backup in backups]
        if kind == "full" and schedule.wal_enabled:
            run.backup_ids += _base_backups(schedule)
        logger.info(
            "schedule %s: started %d %s backup(s) of %s for the slot %s",
            schedule.pk,
            len(backups),
            kind,
            schedule.environment,
            run.slot.isoformat(),
        )
        return run


def _base_backups(schedule: Schedule) -> list:
    """With WAL archiving on, each full slot also takes a physical base backup of every
    PostgreSQL database: the anchors of its point-in-time-recovery window. (A full backup
    belongs to the environment, not to a database, so the two do not conflict.)"""
    started = []
    for database in schedule.environment.databases.filter(engine="postgresql"):
        try:
            started.append(base_backup_request(database=database, schedule=schedule).pk)
        except ApplicationError as exc:
            logger.warning(
                "schedule %s: no base backup of %s: %s", schedule.pk, database, exc.message
            )
    return started


# --- missed runs ----------------------------------------------------------------------


def grace_period() -> timedelta:
    return timedelta(minutes=settings.STRONGBOX_SCHEDULE_GRACE_MINUTES)


def missed_run_dedup_key(schedule: Schedule, kind: str) -> str:
    return f"{AlertKind.SCHEDULE_MISSED}:schedule:{schedule.pk}:{kind}"


@dataclass
class MissedRun:
    schedule_id: object
    kind: str
    slot: datetime


# Statuses of a backup that did complete (retention may have removed it since).
_COMPLETED = (BackupStatus.COMPLETED, BackupStatus.DELETING, BackupStatus.DELETED)


def detect_missed_runs(*, now: datetime | None = None) -> list[MissedRun]:
    """Raise or resolve ``schedule_missed`` alerts (see the module docstring)."""
    now = now or timezone.now()
    grace = grace_period()
    missed = []
    for schedule in _schedules().filter(enabled=True, paused=False):
        for kind in Schedule.KINDS:
            try:
                slot = schedule.previous_slot(kind, now - grace)
                following = schedule.next_runs(kind, 1, slot) if slot else []
            except ScheduleError:
                continue  # logged by the tick
            if slot is None or slot <= schedule.slot_anchor:
                continue
            if _slot_met(schedule, kind, slot, grace, following):
                alert_resolve(
                    organisation=schedule.environment.project.organisation,
                    dedup_key=missed_run_dedup_key(schedule, kind),
                )
                continue
            missed.append(MissedRun(schedule.pk, kind, slot))
            _raise_missed(schedule, kind, slot, grace)
    return missed


def _slot_met(
    schedule: Schedule, kind: str, slot: datetime, grace: timedelta, following: list[datetime]
) -> bool:
    completed = Backup.objects.filter(
        schedule=schedule,
        kind=kind,
        trigger=BackupTrigger.SCHEDULED,
        status__in=_COMPLETED,
        created_at__gte=slot,
    )
    in_time = Q(completed_at__lte=slot + grace)
    later = Q(created_at__gte=following[0]) if following else Q(pk__in=[])
    return completed.filter(in_time | later).exists()


def _raise_missed(schedule: Schedule, kind: str, slot: datetime, grace: timedelta) -> None:
    local = slot.astimezone(validate_timezone(schedule.timezone))
    label = kind
    minutes = int(grace.total_seconds() // 60)
    alert_raise(
        organisation=schedule.environment.project.organisation,
        kind=AlertKind.SCHEDULE_MISSED,
        title=f"Scheduled {label} backup of {schedule.environment} missed",
        message=(
            f"The {label} backup due at {local:%Y-%m-%d %H:%M} ({schedule.timezone}) did not "
            f"complete within {minutes} minutes, and no later scheduled {label} backup has "
            "completed since."
        ),
        environment=schedule.environment,
        severity=Severity.WARNING,
        dedup_key=missed_run_dedup_key(schedule, kind),
    )
