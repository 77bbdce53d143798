"""Reads of alerts, always scoped to one organisation."""

from __future__ import annotations

import uuid

from django.db.models import Count, QuerySet

from alerts.models import Alert, NotificationChannel, NotificationDelivery
from api.base.routes import parse_uuid
from config.errors import NotFound
from organizations.models import Organisation


def alerts_for_organisation(
    *, organisation: Organisation, include_dismissed: bool = False
) -> QuerySet[Alert]:
    """The organisation's alerts, most recently seen first; resolved ones included."""
    alerts = Alert.objects.filter(organisation=organisation).select_related("environment__project")
    if not include_dismissed:
        alerts = alerts.filter(dismissed_at__isnull=True)
    return alerts.order_by("-last_seen_at", "-id")


def alert_unread_count(*, organisation: Organisation) -> int:
    """What the navigation badge shows: alerts neither read nor dismissed."""
    return Alert.objects.filter(
        organisation=organisation, read_at__isnull=True, dismissed_at__isnull=True
    ).count()


def open_alert_count_by_environment(*, organisation: Organisation) -> dict:
    """Environment id -> how many of its alerts are neither resolved nor dismissed."""
    return dict(
        Alert.objects.filter(
            organisation=organisation, resolved_at__isnull=True, dismissed_at__isnull=True
        )
        .exclude(environment=None)
        .values_list("environment_id")
        .annotate(n=Count("id"))
    )


def alert_get(*, organisation: Organisation, alert_id) -> Alert:
    """One alert of the organisation; unknown, malformed and foreign ids are all not found."""
    try:
        pk = alert_id if isinstance(alert_id, uuid.UUID) else uuid.UUID(str(alert_id))
    except ValueError:
        raise NotFound("Alert not found.") from None
    alert = Alert.objects.filter(organisation=organisation, pk=pk).first()
    if alert is None:
        raise NotFound("Alert not found.")
    return alert


def channels_for_organisation(*, organisation: Organisation) -> QuerySet[NotificationChannel]:
    """The organisation's notification channels, by name."""
    return NotificationChannel.objects.filter(organisation=organisation).order_by("name", "id")


def channel_get(*, organisation: Organisation, channel_id) -> NotificationChannel:
    """One channel of the organisation; unknown, malformed and foreign ids are not found."""
    pk = parse_uuid(channel_id)
    channel = (
        NotificationChannel.objects.filter(organisation=organisation, pk=pk).first()
        if pk is not None
        else None
    )
    if channel is None:
        raise NotFound("Notification channel not found.")
    return channel


def channel_recent_deliveries(
    *, channel: NotificationChannel, limit: int = 25
) -> list[NotificationDelivery]:
    """The channel's latest attempts, newest first, with their alerts."""
    return list(
        channel.deliveries.select_related("alert").order_by("-created_at", "-attempt")[:limit]
    )
