"""Where backup artifacts are stored."""

import uuid

from django.db import models
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from organizations.fields import EncryptedJSONField
from organizations.hostpolicy import HostRules, host_rules, rules_from
from organizations.models import HostPolicy, Organisation


class DestinationKind(models.TextChoices):
    LOCAL = "local", "Local directory"
    S3 = "s3", "S3-compatible bucket"


class DestinationManager(models.Manager):
    """Reads each destination with its organisation's host policy entries, so that checking
    an S3 endpoint (``Destination.host_rules``) needs no query of its own: sinks are opened
    on the streaming thread, which makes none."""

    def get_queryset(self):
        entries = HostPolicy.objects.filter(organisation=OuterRef("organisation")).values(
            "allowed_hosts"
        )[:1]
        return (
            super()
            .get_queryset()
            .annotate(organisation_allowed_hosts=Subquery(entries, output_field=models.JSONField()))
        )


class Destination(models.Model):
    """A storage location for artifacts: a local directory or an S3-compatible bucket.

    Non-secret parameters live in ``config``; the backend's sensitive parameters
    (access keys) live in ``secrets``, encrypted at rest and never shown back.
    """

    organisation_lookup = "organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="destinations"
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=DestinationKind.choices)
    config = models.JSONField(default=dict, blank=True)
    secrets = EncryptedJSONField(blank=True, default=dict)
    is_default = models.BooleanField(
        default=False, help_text="Used by manual backups that name no destination."
    )
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = DestinationManager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "name"], name="unique_destination_name"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def bucket_name(self) -> str:
        return self.config.get("bucket", "") if self.kind == DestinationKind.S3 else ""

    def host_rules(self) -> HostRules:
        """The host policy its S3 endpoint must satisfy (read with the row when possible)."""
        if hasattr(self, "organisation_allowed_hosts"):
            return rules_from(self.organisation_allowed_hosts)
        return host_rules(self.organisation_id)
