"""Where backup artifacts are stored."""

import uuid

from django.db import models
from django.utils import timezone

from organizations.fields import EncryptedJSONField
from organizations.models import Organisation


class DestinationKind(models.TextChoices):
    LOCAL = "local", "Local directory"
    S3 = "s3", "S3-compatible bucket"


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
