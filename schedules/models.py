"""Backup schedules: one per environment, with retention and PITR settings."""

import uuid

from django.db import models
from django.utils import timezone as django_timezone

from destinations.models import Destination
from organizations.models import Environment

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

    def as_seed(self) -> dict:
        data: dict = {"interval": self.interval, "minute": list(self.minute)}
        if self.hour is not None:
            data["hour"] = list(self.hour)
        if self.day is not None:
            data["day"] = list(self.day)
        return data
