"""Restore drills: a backup restored on a schedule into a throwaway database, checked and
timed (the recovery time, RTO), then dropped. See ``drills/services.py``."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.timezone import now as _now

from backups.models import Backup
from drills.validation import policy_problems
from organizations.fields import EncryptedTextField
from organizations.models import Database, Environment
from schedules import timing
from schedules.models import due_slot

DEFAULT_PREFIX = "strongbox_drill_"


class DrillStatus(models.TextChoices):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"


ACTIVE_STATUSES = (DrillStatus.SCHEDULED, DrillStatus.RUNNING)


class DrillPhase(models.TextChoices):
    """Where a running drill is; the reaper names it when the worker died there."""

    VERIFYING = "verifying", "reading and verifying the backup"
    RESTORING = "restoring", "restoring into the throwaway database"
    COMPARING = "comparing", "comparing the restored data with the backup"
    DROPPING = "dropping", "dropping the throwaway database"


class DrillTrigger(models.TextChoices):
    MANUAL = "manual"
    SCHEDULED = "scheduled"


class DrillPolicy(models.Model):
    """When and where one database's backups are drilled, and the recovery time it must meet.

    The schedule is a cron (or a named frequency) in ``timezone``, with the same arithmetic
    and checks as backup schedules (``schedules.timing``). The drill server is the source
    database's own server unless ``target_host`` names another; throwaway databases are
    named ``name_prefix`` + the drill's short id, which is how the reaper finds leftovers.
    """

    organisation_lookup = "database__environment__project__organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    database = models.OneToOneField(Database, on_delete=models.CASCADE, related_name="drill_policy")
    enabled = models.BooleanField(default=False)
    cron = models.CharField(max_length=100, blank=True)
    frequency = models.CharField(max_length=30, blank=True, help_text="hourly, daily, weekly…")
    timezone = models.CharField(max_length=64, default="UTC")
    target_host = models.CharField(
        max_length=255, blank=True, help_text="Empty: the source database's own server."
    )
    target_port = models.PositiveIntegerField(null=True, blank=True)
    target_username = models.CharField(max_length=200, blank=True)
    target_password = EncryptedTextField(blank=True)
    name_prefix = models.CharField(max_length=30, default=DEFAULT_PREFIX)
    rto_objective_seconds = models.PositiveIntegerField(null=True, blank=True)
    last_slot_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(default=_now, editable=False)

    class Meta:
        verbose_name_plural = "drill policies"

    def __str__(self) -> str:
        return f"Drill policy of {self.database}"

    def cron_expression(self) -> str | None:
        """The cron the drills follow: ``cron``, else the named ``frequency``, else None."""
        if self.cron:
            return self.cron
        if self.frequency:
            return timing.frequency_to_cron(self.frequency)
        return None

    def due_slot(self, now: datetime) -> datetime | None:
        """The slot due at ``now`` and not yet drilled; a new or edited policy back-fills
        nothing (its last change stands in for a slot never run, as for schedules)."""
        cron = self.cron_expression()
        if cron is None:
            return None
        return due_slot(cron, self.timezone, now, self.last_slot_at, self.updated_at)

    def next_run(self, now: datetime) -> datetime | None:
        try:
            cron = self.cron_expression()
            return timing.next_runs(cron, self.timezone, now, 1)[0] if cron else None
        except ValueError:
            return None

    def clean(self) -> None:
        # The admin's check is the service's (one set of rules).
        problems = policy_problems(
            cron=self.cron,
            frequency=self.frequency,
            timezone=self.timezone,
            name_prefix=self.name_prefix,
            target_port=self.target_port,
        )
        if problems:
            raise ValidationError(problems)


class Drill(models.Model):
    """One restore drill: which backup, when, its outcome, its recovery time and row counts.

    ``rto_seconds`` is from the start of the run (before the artifact is read) to the moment
    the throwaway database answered queries with every table's rows counted and matched.
    ``throwaway_name`` is recorded before the database is created, so a reaper can drop it
    after a worker died mid-drill. ``phase`` is the step a running drill is in (kept once it
    ended: the step it ended in). ``enqueued_at`` is when its task was last handed to the
    broker, so a ``scheduled`` drill whose task was lost is enqueued again.
    """

    organisation_lookup = "environment__project__organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="drills")
    database = models.ForeignKey(
        Database, null=True, blank=True, on_delete=models.CASCADE, related_name="drills"
    )
    backup = models.ForeignKey(
        Backup, null=True, blank=True, on_delete=models.SET_NULL, related_name="drills"
    )
    status = models.CharField(
        max_length=20, choices=DrillStatus.choices, default=DrillStatus.SCHEDULED
    )
    trigger = models.CharField(
        max_length=20, choices=DrillTrigger.choices, default=DrillTrigger.MANUAL
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=_now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    phase = models.CharField(max_length=20, choices=DrillPhase.choices, blank=True)
    enqueued_at = models.DateTimeField(default=_now, editable=False)
    rto_seconds = models.FloatField(null=True, blank=True)
    rto_objective_seconds = models.PositiveIntegerField(null=True, blank=True)
    expected_rows = models.BigIntegerField(null=True, blank=True)
    restored_rows = models.BigIntegerField(null=True, blank=True)
    throwaway_name = models.CharField(max_length=1000, blank=True)
    message = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["database", "-created_at"], name="drill_database_recent")]
        constraints = [
            # One drill at a time per database: a second request is a 409.
            models.UniqueConstraint(
                fields=["database"],
                condition=Q(status__in=["scheduled", "running"]),
                name="one_active_drill_per_database",
            ),
        ]

    def __str__(self) -> str:
        return f"Drill {self.id} ({self.status})"

    @property
    def organisation(self):
        return self.environment.project.organisation

    @property
    def short_id(self) -> str:
        return self.id.hex[:12]
