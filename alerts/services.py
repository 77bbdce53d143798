"""Writes to alerts: raise (de-duplicated), resolve, read, dismiss, and deliver notifications.

``alert_raise`` is the one function every part of Strongbox calls when something goes
wrong. It never fails its caller because of notifications: those are enqueued on commit
as one django-q2 task per channel, and each task calls ``notification_deliver``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, schedule

from alerts import notifiers
from alerts.models import Alert, AlertKind, NotificationChannel, NotificationDelivery, Severity
from organizations.models import Organisation

logger = logging.getLogger(__name__)

DELIVERY_TASK = "alerts.tasks.deliver_notification"
MAX_DELIVERY_ATTEMPTS = 5


def alert_dedup_key(*, kind: str, environment=None, backup=None, restore=None) -> str:
    """The default "same cause" key: the kind and the most specific object it concerns.

    A backup counts as its database (every failed nightly of one database is one alert),
    or as its environment when it has no database (a files backup).
    """
    if backup is not None:
        if backup.database_id:
            return f"{kind}:database:{backup.database_id}"
        return f"{kind}:environment:{backup.environment_id}"
    if restore is not None:
        if restore.target_database_id:
            return f"{kind}:database:{restore.target_database_id}"
        return f"{kind}:environment:{restore.target_environment_id}"
    if environment is not None:
        return f"{kind}:environment:{environment.pk}"
    return kind


def _open_alerts(*, organisation: Organisation, dedup_key: str):
    return Alert.objects.filter(
        organisation=organisation,
        dedup_key=dedup_key,
        resolved_at__isnull=True,
        dismissed_at__isnull=True,
    )


def _check_tenancy(organisation: Organisation, environment, backup, restore) -> None:
    # Callers are our own code; an object of another organisation here is a bug that
    # would show one tenant's alert to another, so refuse loudly.
    owners = [obj.organisation_id for obj in (backup, restore) if obj is not None]
    if environment is not None:
        owners.append(environment.project.organisation_id)
    if any(owner != organisation.pk for owner in owners):
        raise ValueError(
            "The alert's environment, backup or restore belongs to another organisation."
        )


def alert_raise(
    *,
    organisation: Organisation,
    kind: str,
    title: str,
    message: str = "",
    environment=None,
    backup=None,
    restore=None,
    severity: str = Severity.WARNING,
    dedup_key: str | None = None,
) -> Alert:
    """Raise an alert, or count one more occurrence of the open alert with the same key.

    Only a new alert is notified; a recurrence updates the open one (occurrences, last
    seen, latest title/message/severity/backup) so a failing nightly does not flood.
    """
    if kind not in AlertKind.values or severity not in Severity.values:
        raise ValueError(f"Unknown alert kind {kind!r} or severity {severity!r}.")
    # Titles are often built from error text; a long one must not turn into a DataError.
    title = title[: Alert._meta.get_field("title").max_length]
    if environment is None:
        if backup is not None:
            environment = backup.environment
        elif restore is not None:
            environment = restore.target_environment
    _check_tenancy(organisation, environment, backup, restore)
    key = dedup_key or alert_dedup_key(
        kind=kind, environment=environment, backup=backup, restore=restore
    )

    # Update first (a conditional UPDATE, safe with several workers); create when
    # nothing is open. The partial unique constraint on open alerts makes a concurrent
    # create fail, and the second pass then counts this occurrence on the winner's row.
    for _ in range(2):
        now = timezone.now()
        changes = {
            "occurrences": F("occurrences") + 1,
            "last_seen_at": now,
            "title": title,
            "message": message,
            "severity": severity,
        }
        if backup is not None:
            changes["backup"] = backup
        if restore is not None:
            changes["restore"] = restore
        if _open_alerts(organisation=organisation, dedup_key=key).update(**changes):
            break
        try:
            with transaction.atomic():
                alert = Alert.objects.create(
                    organisation=organisation,
                    environment=environment,
                    backup=backup,
                    restore=restore,
                    kind=kind,
                    severity=severity,
                    dedup_key=key,
                    title=title,
                    message=message,
                    first_seen_at=now,
                    last_seen_at=now,
                )
        except IntegrityError:
            continue
        transaction.on_commit(partial(_enqueue_notifications, alert.pk), robust=True)
        return alert
    # The row just counted (it may have been resolved or dismissed a moment later).
    return Alert.objects.filter(organisation=organisation, dedup_key=key).latest("last_seen_at")


def alert_resolve(
    *,
    organisation: Organisation,
    dedup_key: str | None = None,
    kind: str | None = None,
    environment=None,
    backup=None,
    restore=None,
) -> int:
    """Resolve the open alerts of a cause that has since succeeded; returns how many.

    Pass the same ``kind`` and objects as ``alert_raise`` (or its ``dedup_key``). Dismissed
    alerts are resolved too: dismissing hides an alert, it does not mean it was fixed.
    """
    if dedup_key is None:
        if kind is None:
            raise ValueError("alert_resolve needs a dedup_key or a kind.")
        dedup_key = alert_dedup_key(
            kind=kind, environment=environment, backup=backup, restore=restore
        )
    return Alert.objects.filter(
        organisation=organisation, dedup_key=dedup_key, resolved_at__isnull=True
    ).update(resolved_at=timezone.now())


def alert_dismiss(*, alert: Alert, user=None) -> Alert:
    """Hide an alert from the active list. Dismissing twice keeps the first time.

    ``user`` is accepted for the callers' sake; the model does not record who yet.
    """
    now = timezone.now()
    Alert.objects.filter(pk=alert.pk, dismissed_at__isnull=True).update(dismissed_at=now)
    # Dismissing is reading it and deciding it needs nothing more: it is read too.
    Alert.objects.filter(pk=alert.pk, read_at__isnull=True).update(read_at=now)
    alert.refresh_from_db(fields=["dismissed_at", "read_at"])
    return alert


def alert_mark_read(*, alert: Alert, user=None) -> Alert:
    """Mark an alert as read without dismissing it. Reading twice keeps the first time."""
    Alert.objects.filter(pk=alert.pk, read_at__isnull=True).update(read_at=timezone.now())
    alert.refresh_from_db(fields=["read_at"])
    return alert


# Notifications ---------------------------------------------------------------------------


def _enqueue_notifications(alert_id) -> None:
    """One delivery task per enabled channel. Runs on commit; never raises."""
    try:
        alert = Alert.objects.get(pk=alert_id)
        channel_ids = list(
            NotificationChannel.objects.filter(
                organisation_id=alert.organisation_id, enabled=True
            ).values_list("pk", flat=True)
        )
    except Exception:
        logger.exception("Could not look up notification channels for alert %s", alert_id)
        return
    for channel_id in channel_ids:
        try:
            async_task(DELIVERY_TASK, str(channel_id), str(alert_id), 1)
        except Exception:
            logger.exception("Could not enqueue notification of alert %s", alert_id)


def delivery_retry_delay(attempt: int) -> timedelta:
    """The wait after failed attempt ``attempt``: 30 s, 2 min, 8 min, 32 min."""
    return timedelta(seconds=30 * 4 ** (attempt - 1))


def _schedule_retry(*, channel: NotificationChannel, alert: Alert, attempt: int) -> None:
    """Run ``attempt`` later, as a one-off django-q2 schedule (no worker sleeps meanwhile)."""
    try:
        schedule(
            DELIVERY_TASK,
            str(channel.pk),
            str(alert.pk),
            attempt,
            # The name makes a duplicate schedule of the same attempt an IntegrityError.
            name=f"notify:{channel.pk}:{alert.pk}:{attempt}",
            schedule_type=Schedule.ONCE,
            next_run=timezone.now() + delivery_retry_delay(attempt - 1),
        )
    except IntegrityError:
        logger.info("Attempt %s of alert %s on %s is already scheduled", attempt, alert.pk, channel)


def notification_deliver(
    *, channel: NotificationChannel, alert: Alert, attempt: int = 1
) -> NotificationDelivery | None:
    """Make one delivery attempt, log it, and schedule the next one if it may help.

    Returns the logged attempt, or None when there was nothing to do (the attempt was
    already claimed by another worker, or the channel is disabled).
    """
    if not channel.enabled or channel.organisation_id != alert.organisation_id:
        return None
    # Claim the attempt: the row is unique per (channel, alert, attempt), so a task
    # delivered twice sends once. "In progress" stays visible if the worker dies.
    try:
        with transaction.atomic():
            delivery = NotificationDelivery.objects.create(
                channel=channel, alert=alert, attempt=attempt, error="In progress."
            )
    except IntegrityError:
        logger.info("Attempt %s of alert %s on %s was already made", attempt, alert.pk, channel)
        return None

    try:
        result = notifiers.notifier_for(channel.kind).send(channel=channel, alert=alert)
    except Exception as exc:
        # A bug in one notifier is logged like any failure and retried like one.
        logger.exception("Notifier %s failed", channel.kind)
        result = notifiers.DeliveryResult(
            ok=False, error=f"{type(exc).__name__}: {exc}", retry=True
        )

    delivery.ok = result.ok
    delivery.status_code = result.status_code
    delivery.error = result.error
    delivery.save(update_fields=["ok", "status_code", "error"])
    if not result.ok and result.retry and attempt < MAX_DELIVERY_ATTEMPTS:
        _schedule_retry(channel=channel, alert=alert, attempt=attempt + 1)
    return delivery
