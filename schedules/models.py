"""Backup schedules: one per environment, with retention and PITR settings."""

import uuid
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone as django_timezone

from destinations.models import Destination
from organizations.models import Environment
from schedules import timing
from schedules.retention import RetentionPolicy

RETENTION_FIELDS = (
    "retain_hourly",
    "retain_daily",
    "retain_weekly",
    "retain_monthly",
    "retain_hourly_days",
    "retain_daily_days",
    "retain_weekly_days",
    "retain_monthly_days",
    "retain_db_hourly",
    "retain_db_daily",
    "retain_db_weekly",
    "retain_db_monthly",
    "retain_full_hourly",
    "retain_full_daily",
    "retain_full_weekly",
    "retain_full_monthly",
)


class Schedule(models.Model):
    """When an environment is backed up, where to, and how long backups are kept.

    Every field of seed 003's schedule body lives here. Run times are computed in
    ``timezone`` (see ``schedules.timing``), so "daily at 02:00" follows DST.
    """

    organisation_lookup = "environment__project__organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.OneToOneField(
        Environment, on_delete=models.CASCADE, related_name="schedule"
    )
    db_cron = models.CharField(max_length=100, blank=True)
    db_frequency = models.CharField(max_length=30, blank=True)
    full_cron = models.CharField(max_length=100, blank=True)
    full_frequency = models.CharField(max_length=30, blank=True)
    destinations = models.ManyToManyField(Destination, blank=True, related_name="schedules")
    enabled = models.BooleanField(default=True)
    paused = models.BooleanField(default=False)
    timezone = models.CharField(max_length=64, default="UTC")

    retain_hourly = models.PositiveIntegerField(null=True, blank=True)
    retain_daily = models.PositiveIntegerField(null=True, blank=True)
    retain_weekly = models.PositiveIntegerField(null=True, blank=True)
    retain_monthly = models.PositiveIntegerField(null=True, blank=True)
    retain_hourly_days = models.PositiveIntegerField(null=True, blank=True)
    retain_daily_days = models.PositiveIntegerField(null=True, blank=True)
    retain_weekly_days = models.PositiveIntegerField(null=True, blank=True)
    retain_monthly_days = models.PositiveIntegerField(null=True, blank=True)
    retain_db_hourly = models.PositiveIntegerField(null=True, blank=True)
    retain_db_daily = models.PositiveIntegerField(null=True, blank=True)
    retain_db_weekly = models.PositiveIntegerField(null=True, blank=True)
    retain_db_monthly = models.PositiveIntegerField(null=True, blank=True)
    retain_full_hourly = models.PositiveIntegerField(null=True, blank=True)
    retain_full_daily = models.PositiveIntegerField(null=True, blank=True)
    retain_full_weekly = models.PositiveIntegerField(null=True, blank=True)
    retain_full_monthly = models.PositiveIntegerField(null=True, blank=True)
    retention_floor = models.PositiveIntegerField(default=1)

    wal_enabled = models.BooleanField(default=False)
    wal_retention_days = models.PositiveIntegerField(null=True, blank=True)
    verify_by_restore = models.BooleanField(
        default=False, help_text="Periodically restore the latest backup into a scratch database."
    )

    # The last slot each kind ran for, so a worker that was down runs a missed
    # slot once on start, not once per missed slot.
    last_db_slot_at = models.DateTimeField(null=True, blank=True)
    last_full_slot_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=django_timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Schedule of {self.environment}"

    def clean(self) -> None:
        """The checks ``schedule_upsert`` makes of the cron and timezone, for writers that
        go through model validation (the admin)."""
        errors = {}

        def check_cron(value, field):
            return timing.validate_cron(value, field=field, max_length=timing.CRON_MAX_LENGTH)

        checks = [(check_cron, name) for name in ("db_cron", "full_cron")]
        for check, name in [*checks, (timing.validate_timezone, "timezone")]:
            value = getattr(self, name)
            if not value and name != "timezone":
                continue  # an empty cron: that kind is not scheduled
            try:
                check(value, field=name)
            except timing.ScheduleError as exc:
                errors[name] = exc.message
        if errors:
            raise ValidationError(errors)

    # --- schedule arithmetic ---------------------------------------------------------
    # ``kind`` is a backup kind the schedule produces: "database" or "full".

    KINDS = ("database", "full")

    @staticmethod
    def slot_field(kind: str) -> str:
        """The field holding the last slot the schedule's own cron of ``kind`` ran for."""
        return {"database": "last_db_slot_at", "full": "last_full_slot_at"}[kind]

    def cron_for(self, kind: str) -> str | None:
        """The schedule's own cron for ``kind``: the cron field, else the frequency, else None."""
        prefix = {"database": "db", "full": "full"}[kind]
        cron = getattr(self, f"{prefix}_cron")
        if cron:
            return timing.validate_cron(cron, field=f"{prefix}_cron")
        frequency = getattr(self, f"{prefix}_frequency")
        if frequency:
            return timing.frequency_to_cron(frequency, field=f"{prefix}_frequency")
        return None

    def rules_for(self, kind: str) -> list["IntervalRule"]:
        # .all() so a prefetch_related("interval_rules") is used.
        return [rule for rule in self.interval_rules.all() if rule.kind == kind]

    def crons_for(self, kind: str) -> list[str]:
        """Every cron that produces ``kind`` backups: the schedule's own and its rules'."""
        own = self.cron_for(kind)
        return ([own] if own else []) + [rule.cron() for rule in self.rules_for(kind)]

    @property
    def slot_anchor(self) -> datetime:
        """Where a cron that has never run starts counting slots: the last configuration change.

        A new schedule (or one given a cron, or a new rule) does not back-fill the slots
        before it was saved; the first slot after that runs.
        """
        return self.updated_at

    def due_slot(self, kind: str, now: datetime) -> datetime | None:
        """The slot of the own cron of ``kind`` due at ``now`` and not yet run, or None."""
        cron = self.cron_for(kind)
        if cron is None:
            return None
        return due_slot(
            cron, self.timezone, now, getattr(self, self.slot_field(kind)), self.slot_anchor
        )

    def previous_slot(self, kind: str, before: datetime) -> datetime | None:
        """The latest slot of any cron of ``kind`` at or before ``before``."""
        slots = [timing.previous_run(cron, self.timezone, before) for cron in self.crons_for(kind)]
        return max((slot for slot in slots if slot is not None), default=None)

    def next_runs(self, kind: str, count: int, now: datetime) -> list[datetime]:
        """The next ``count`` runs of ``kind`` after ``now`` over its cron and rules (UTC)."""
        runs = {
            run
            for cron in self.crons_for(kind)
            for run in timing.next_runs(cron, self.timezone, now, count)
        }
        return sorted(runs)[:count]

    def next_run(self, now: datetime) -> datetime | None:
        """The earliest run of either kind after ``now`` (UTC), or None.

        For pages: a cron that cannot run (invalid stored value) is skipped, so the page
        shows the runs the other crons give instead of failing.
        """
        crons = []
        for kind in self.KINDS:
            try:
                own = self.cron_for(kind)
            except ValueError:
                own = None
            crons += [own] if own else []
            for rule in self.rules_for(kind):
                try:
                    crons.append(rule.cron())
                except ValueError:
                    continue
        runs = []
        for cron in crons:
            try:
                runs += timing.next_runs(cron, self.timezone, now, 1)
            except ValueError:
                continue
        return min(runs, default=None)

    def retention_policy(self) -> RetentionPolicy:
        """The ``retain*`` fields and the floor as the pure retention module takes them."""
        return RetentionPolicy(
            **{name: getattr(self, name) for name in RETENTION_FIELDS}, floor=self.retention_floor
        )


class IntervalRule(models.Model):
    """A seed-001 interval rule: hourly, daily or weekly at given minutes/hours/days."""

    organisation_lookup = "schedule__environment__project__organisation"

    class Interval(models.TextChoices):
        HOURLY = "hourly"
        DAILY = "daily"
        WEEKLY = "weekly"

    class Kind(models.TextChoices):
        DATABASE = "database"
        FULL = "full"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="interval_rules")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.DATABASE)
    interval = models.CharField(max_length=10, choices=Interval.choices)
    minute = models.JSONField(default=list)
    hour = models.JSONField(null=True, blank=True)
    # 0 = Monday, as seed 001 defines it.
    day = models.JSONField(null=True, blank=True)
    last_slot_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.interval} rule of {self.schedule}"

    def cron(self) -> str:
        """The equivalent cron expression (seed day 0 = Monday becomes cron 1)."""
        return timing.interval_rule_to_cron(
            timing.IntervalRule(
                interval=self.interval, minute=list(self.minute), hour=self.hour, day=self.day
            )
        )

    def due_slot(self, now: datetime) -> datetime | None:
        """The slot of this rule due at ``now`` and not yet run, or None."""
        schedule = self.schedule
        return due_slot(
            self.cron(), schedule.timezone, now, self.last_slot_at, schedule.slot_anchor
        )

    def as_seed(self) -> dict:
        data: dict = {"interval": self.interval, "minute": list(self.minute)}
        if self.hour is not None:
            data["hour"] = list(self.hour)
        if self.day is not None:
            data["day"] = list(self.day)
        return data


def due_slot(
    cron: str, tz: str, now: datetime, last: datetime | None, anchor: datetime | None
) -> datetime | None:
    """The latest slot of ``cron`` at or before ``now`` if it is after the last one run.

    Only the latest slot is returned, so a worker that was down runs a missed slot once,
    not once per missed slot. ``last`` None means the cron never ran: ``anchor`` (when it
    was configured) stands in for it, so nothing from before is back-filled.
    """
    # DST: previous_run counts slots in the schedule's wall clock and maps each to one
    # instant: a slot in the spring-forward gap runs at the end of the gap, a slot in the
    # repeated fall-back hour at its first occurrence. Comparing instants (never wall
    # times) with the last slot is what keeps the repeated hour from running twice.
    slot = timing.previous_run(cron, tz, now)
    if slot is None:
        return None
    baseline = last if last is not None else anchor
    if baseline is not None and slot <= baseline:
        return None
    return slot
