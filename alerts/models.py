"""Alerts raised by backups, schedules, verification and PITR, and their notifications."""

import uuid

from django.db import models
from django.utils import timezone

from organizations.models import Environment, Organisation


class AlertKind(models.TextChoices):
    BACKUP_FAILED = "backup_failed"
    RESTORE_FAILED = "restore_failed"
    SCHEDULE_MISSED = "schedule_missed"
    VERIFICATION_FAILED = "verification_failed"
    DESTINATION_UNREACHABLE = "destination_unreachable"
    WAL_ARCHIVING_FAILED = "wal_archiving_failed"
    WAL_LAG = "wal_lag"
    RETENTION_DELETED = "retention_deleted"
    DRILL_FAILED = "drill_failed"
    RTO_EXCEEDED = "rto_exceeded"


class Severity(models.TextChoices):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Alert(models.Model):
    """Something an operator should know. A recurring cause updates one open alert."""

    organisation_lookup = "organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="alerts")
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    backup = models.ForeignKey(
        "backups.Backup", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    restore = models.ForeignKey(
        "restores.Restore", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    kind = models.CharField(max_length=40, choices=AlertKind.choices)
    severity = models.CharField(max_length=20, choices=Severity.choices, default=Severity.WARNING)
    # What makes two occurrences "the same thing" (e.g. kind + database id).
    dedup_key = models.CharField(max_length=300)
    title = models.CharField(max_length=300)
    message = models.TextField(blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    occurrences = models.PositiveIntegerField(default=1)
    read_at = models.DateTimeField(null=True, blank=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        indexes = [models.Index(fields=["organisation", "dedup_key"], name="alert_dedup")]
        constraints = [
            # At most one open alert per cause, so concurrent raises cannot both create one.
            models.UniqueConstraint(
                fields=["organisation", "dedup_key"],
                condition=models.Q(resolved_at__isnull=True, dismissed_at__isnull=True),
                name="one_open_alert_per_cause",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class NotificationChannel(models.Model):
    """Where an organisation's alerts are sent: an email address or a webhook URL."""

    organisation_lookup = "organisation"

    class Kind(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="notification_channels"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    target = models.CharField(max_length=1000, help_text="Email address or webhook URL.")
    secret = models.CharField(max_length=200, blank=True, help_text="HMAC key for webhooks.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"{self.kind}: {self.target}"


class NotificationDelivery(models.Model):
    """One attempt to deliver one alert through one channel."""

    organisation_lookup = "channel__organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    channel = models.ForeignKey(
        NotificationChannel, on_delete=models.CASCADE, related_name="deliveries"
    )
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveIntegerField(default=1)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Claiming an attempt is inserting its row: a task delivered twice sends once.
            models.UniqueConstraint(
                fields=["channel", "alert", "attempt"], name="one_delivery_per_attempt"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} #{self.attempt}: {'ok' if self.ok else self.error or 'failed'}"
