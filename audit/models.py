"""The audit log: one append-only row per security-relevant action.

A row is written once (``audit.services.audit_record``) and never changed: ``save`` of an
existing row, ``update()`` and ``delete()`` through the ORM raise ``AppendOnly``. The one
way rows leave is the retention purge (``audit.services.audit_events_purge``), which
deletes whole days past ``STRONGBOX_AUDIT_RETENTION_DAYS``.

Names are copied into the row (the actor's, the object's) rather than referenced: the
log must still read the same after the user, token or backup is gone, and listing it
joins nothing. The organisation is a reference without a database constraint for the
same reason: deleting an organisation leaves its history, which retention removes.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class AppendOnly(Exception):
    """An attempt to change or delete an audit event through the ORM."""


class ActorType(models.TextChoices):
    USER = "user", "User"
    TOKEN = "token", "API token"
    SYSTEM = "system", "System"


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("Audit events are append-only: they cannot be updated.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnly("Audit events are append-only: they cannot be updated.")

    def delete(self):
        raise AppendOnly("Audit events are append-only: only the retention purge deletes them.")

    def _purge(self) -> int:
        """Delete these rows; for ``audit_events_purge`` only."""
        deleted, _ = models.QuerySet.delete(self)
        return deleted


class AuditEvent(models.Model):
    """Who did what to which object, from where, and how it ended. Never changed."""

    organisation_lookup = "organisation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    at = models.DateTimeField(default=timezone.now, editable=False)
    # Null for a sign-in of a user who belongs to no organisation (or an unknown username).
    organisation = models.ForeignKey(
        "organizations.Organisation",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="audit_events",
    )
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_name = models.CharField(max_length=200)
    # The user's or token's primary key as text, so two actors of one name stay apart.
    actor_ref = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_name = models.CharField(max_length=300, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS)
    details = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["organisation", "-at"], name="audit_org_at"),
            models.Index(fields=["organisation", "action", "-at"], name="audit_org_action_at"),
            models.Index(fields=["at"], name="audit_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnly("Audit events are append-only: they cannot be changed.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("Audit events are append-only: only the retention purge deletes them.")
