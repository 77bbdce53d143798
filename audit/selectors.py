"""Reads of the audit log."""

from __future__ import annotations

from collections.abc import Mapping

from django.db.models import QuerySet

from audit.filters import audit_events_filter
from audit.models import AuditEvent


def audit_events_for_organisation(*, organisation, params: Mapping) -> QuerySet[AuditEvent]:
    """The organisation's events, newest first, filtered by ``params`` (``action``,
    ``actor``, ``since``; ``InvalidInput`` naming the parameter for a bad value)."""
    events = AuditEvent.objects.filter(organisation=organisation).order_by("-at", "-id")
    return audit_events_filter(queryset=events, params=params)
