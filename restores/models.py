"""Restores of backups, with their logs (seed 003's "restore logs")."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from organizations.models import Database, Environment, Organisation


class RestoreStatus(models.TextChoices):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    FAILED = "failed"


ACTIVE_RESTORE_STATUSES = (RestoreStatus.SCHEDULED, RestoreStatus.IN_PROGRESS)


class RestorePhase(models.TextChoices):
    """In order: nothing is changed on the target before SWAP."""

    VERIFY = "VERIFY"  # fetch the artifact, compare size and checksum, check the key
    SAFETY_BACKUP = "SAFETY_BACKUP"  # back up the target as it is
    RECOVER = "RECOVER"  # point in time only: replay WAL into a private recovered copy
    RESTORE = "RESTORE"  # load into scratch copies beside the target
    CHECK = "CHECK"  # compare row counts with those recorded by the backup
    SWAP = "SWAP"  # put the scratch copies in place of the target


class RestoreQuerySet(models.QuerySet):
    def active(self):
        """Scheduled or running: what retention must not delete from under them."""
        return self.filter(status__in=ACTIVE_RESTORE_STATUSES)


class Restore(models.Model):
    """A restore of one backup into an environment, and its log."""

    organisation_lookup = "organisation"

    class TargetType(models.TextChoices):
        SAME = "same"
        OTHER = "other"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="restores"
    )
    backup = models.ForeignKey("backups.Backup", on_delete=models.PROTECT, related_name="restores")
    source_environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="restores_from"
    )
    target_environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="restores_into"
    )
    target_database = models.ForeignKey(
        Database, null=True, blank=True, on_delete=models.SET_NULL, related_name="restores"
    )
    target_type = models.CharField(max_length=10, choices=TargetType.choices)
    # The plan the request was accepted with (``restores.plan.member_record`` per member:
    # which source goes into which target database); the worker restores exactly that.
    members = models.JSONField(default=list, blank=True)
    plan_warnings = models.JSONField(default=list, blank=True)
    pitr_target = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    take_safety_backup = models.BooleanField(default=True)
    safety_backup = models.ForeignKey(
        "backups.Backup", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set on the restore that brings a safety backup back ("undo this restore").
    undoes = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="undone_by"
    )
    status = models.CharField(
        max_length=20, choices=RestoreStatus.choices, default=RestoreStatus.SCHEDULED
    )
    phase = models.CharField(max_length=20, blank=True)
    phases = models.JSONField(default=list, blank=True)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    objects = RestoreQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["target_environment"],
                condition=models.Q(status__in=["scheduled", "in-progress"]),
                name="one_active_restore_per_target",
            ),
        ]

    def __str__(self) -> str:
        return f"Restore of {self.backup} into {self.target_environment}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_RESTORE_STATUSES

    @property
    def percent(self) -> float | None:
        if self.status == RestoreStatus.COMPLETED:
            return 100.0
        if not self.bytes_total:
            return None
        return min(99.0, round(100.0 * self.bytes_done / self.bytes_total, 1))
