"""Alerts raised by backups, schedules, verification and PITR, and their notifications."""

import uuid
from urllib.parse import urlsplit

from django.db import models
from django.utils import timezone

from organizations.fields import EncryptedTextField
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
    BACKUP_SIZE_ANOMALY = "backup_size_anomaly"
    NOTIFICATION_FAILED = "notification_failed"
    DRILL_FAILED = "drill_failed"
    RTO_EXCEEDED = "rto_exceeded"


class Severity(models.TextChoices):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @classmethod
    def rank(cls, value: str) -> int:
        """Order of severities, lowest first, for a channel's ``min_severity``."""
        return list(cls.values).index(value)


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
    # The channel a ``notification_failed`` alert is about: it is never notified on it.
    channel = models.ForeignKey(
        "alerts.NotificationChannel",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alerts",
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
    """Where an organisation's alerts are sent: email recipients, a signed webhook, or an
    apprise URL (Slack, Discord, Telegram, Teams, ntfy, Gotify, Matrix, PagerDuty, ...).

    The URL and the webhook secret are encrypted at rest and write-only in the API. Which
    alerts it receives: ``events`` (alert kinds; empty means all) at ``min_severity`` or
    above; ``send_resolved`` adds a notice when such an alert resolves.
    """

    organisation_lookup = "organisation"

    class Kind(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"
        APPRISE = "apprise"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="notification_channels"
    )
    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    url = EncryptedTextField(blank=True, help_text="Webhook URL or apprise URL (encrypted).")
    recipients = models.JSONField(default=list, blank=True, help_text="Email addresses.")
    secret = EncryptedTextField(blank=True, help_text="HMAC key for webhooks (encrypted).")
    events = models.JSONField(default=list, blank=True, help_text="Alert kinds; empty: all.")
    min_severity = models.CharField(max_length=20, choices=Severity.choices, default=Severity.INFO)
    send_resolved = models.BooleanField(default=True)
    enabled = models.BooleanField(default=True)
    # Failed attempts in a row (tests included); a success sets it back to 0.
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    last_delivery_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_delivery_ok = models.BooleanField(null=True, blank=True, editable=False)
    last_delivery_error = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return self.name or f"{self.kind} channel"

    def masked_url(self) -> str:
        """The URL as answers show it: its scheme, and a webhook's host; never a token."""
        if not self.url:
            return ""
        scheme = self.url.split("://", 1)[0] if "://" in self.url else ""
        if self.kind == self.Kind.WEBHOOK:
            host = urlsplit(self.url).netloc.rsplit("@", 1)[-1]
            return f"{scheme}://{host}/****"
        return f"{scheme}://****"

    def wants(self, alert: Alert) -> bool:
        """Does this channel receive ``alert`` (its kind and severity)?"""
        if self.events and alert.kind not in self.events:
            return False
        return Severity.rank(alert.severity) >= Severity.rank(self.min_severity)


class DeliveryEvent(models.TextChoices):
    RAISED = "raised"
    RESOLVED = "resolved"
    TEST = "test"


class NotificationDelivery(models.Model):
    """One attempt to deliver one alert's notice (raised or resolved), or a test message,
    through one channel: the delivery log."""

    organisation_lookup = "channel__organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    channel = models.ForeignKey(
        NotificationChannel, on_delete=models.CASCADE, related_name="deliveries"
    )
    # None for a test message, which is about no alert.
    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(
        max_length=20, choices=DeliveryEvent.choices, default=DeliveryEvent.RAISED
    )
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
                fields=["channel", "alert", "event", "attempt"], name="one_delivery_per_attempt"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} #{self.attempt}: {'ok' if self.ok else self.error or 'failed'}"
