"""Writes to alerts: raise (de-duplicated), resolve, read, dismiss; notification channels
and the delivery of notices.

``alert_raise`` is the one function every part of Strongbox calls when something goes
wrong. It never fails its caller because of notifications: those are enqueued on commit
as one django-q2 task per channel that wants the alert (its ``events`` and
``min_severity``), and each task calls ``notification_deliver``. ``alert_resolve`` does the
same with a "resolved" notice for the channels that ``send_resolved``.

Every attempt is a ``NotificationDelivery`` row (the delivery log); a failed one is tried
again later with backoff (``delivery_retry_delay``). A channel whose attempts fail
``STRONGBOX_NOTIFICATION_FAILURES_ALERT`` times in a row raises ``notification_failed``,
which is notified on the organisation's other channels, never on the failing one (so a
broken channel cannot feed itself), and is resolved by its next successful delivery.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, schedule

from alerts import notifiers
from alerts.models import (
    Alert,
    AlertKind,
    DeliveryEvent,
    NotificationChannel,
    NotificationDelivery,
    Severity,
)
from audit.services import AuditObject, audit_record, changes, url_shown
from config.errors import InvalidInput
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


def _check_tenancy(organisation: Organisation, environment, backup, restore, channel) -> None:
    # Callers are our own code; an object of another organisation here is a bug that
    # would show one tenant's alert to another, so refuse loudly.
    owners = [obj.organisation_id for obj in (backup, restore, channel) if obj is not None]
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
    channel: NotificationChannel | None = None,
) -> Alert:
    """Raise an alert, or count one more occurrence of the open alert with the same key.

    Only a new alert is notified; a recurrence updates the open one (occurrences, last
    seen, latest title/message/severity/backup) so a failing nightly does not flood.
    ``channel``: the notification channel the alert is about; it is not notified of it.
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
    _check_tenancy(organisation, environment, backup, restore, channel)
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
                    channel=channel,
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
        transaction.on_commit(
            partial(_enqueue_notifications, alert.pk, DeliveryEvent.RAISED), robust=True
        )
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
    Each alert resolved here (a conditional UPDATE: resolving twice notifies once) sends
    its "resolved" notice on commit.
    """
    if dedup_key is None:
        if kind is None:
            raise ValueError("alert_resolve needs a dedup_key or a kind.")
        dedup_key = alert_dedup_key(
            kind=kind, environment=environment, backup=backup, restore=restore
        )
    unresolved = Alert.objects.filter(
        organisation=organisation, dedup_key=dedup_key, resolved_at__isnull=True
    )
    resolved = 0
    now = timezone.now()
    for pk in list(unresolved.values_list("pk", flat=True)):
        if unresolved.filter(pk=pk).update(resolved_at=now):
            resolved += 1
            transaction.on_commit(
                partial(_enqueue_notifications, pk, DeliveryEvent.RESOLVED), robust=True
            )
    return resolved


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


# Notification channels ---------------------------------------------------------------


def _channel_problems(channel: NotificationChannel) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if not channel.name.strip():
        problems["name"] = ["A channel needs a name."]
    if channel.kind not in NotificationChannel.Kind.values:
        kinds = ", ".join(NotificationChannel.Kind.values)
        problems["kind"] = [f"Must be one of: {kinds}."]
        return problems
    unknown = [kind for kind in channel.events if kind not in AlertKind.values]
    if unknown:
        problems["events"] = [
            f"Unknown alert kind(s) {', '.join(map(repr, unknown))}; the kinds are: "
            f"{', '.join(AlertKind.values)}."
        ]
    if channel.min_severity not in Severity.values:
        problems["min_severity"] = [f"Must be one of: {', '.join(Severity.values)}."]
    notifier = notifiers.notifier_for(channel.kind)
    problems.update(
        notifier.validate(
            organisation=channel.organisation,
            url=channel.url,
            recipients=list(channel.recipients),
            secret=channel.secret,
        )
    )
    return problems


def notification_channel_validate(*, channel: NotificationChannel) -> None:
    """InvalidInput naming each field that is wrong (the admin, the pages and the API)."""
    problems = _channel_problems(channel)
    if problems:
        field, messages = next(iter(problems.items()))
        raise InvalidInput(f"{field}: {messages[0]}", fields=problems)


def notification_channel_create(
    *,
    organisation: Organisation,
    name: str,
    kind: str,
    url: str = "",
    recipients: list[str] | None = None,
    secret: str = "",
    events: list[str] | None = None,
    min_severity: str = Severity.INFO,
    send_resolved: bool = True,
    enabled: bool = True,
) -> NotificationChannel:
    """A new channel of ``organisation``, checked by its kind (URL, host policy, addresses)."""
    channel = NotificationChannel(
        organisation=organisation,
        name=name.strip(),
        kind=kind,
        url=url.strip(),
        recipients=[address.strip() for address in recipients or []],
        secret=secret,
        events=list(dict.fromkeys(events or [])),
        min_severity=min_severity,
        send_resolved=send_resolved,
        enabled=enabled,
    )
    notification_channel_validate(channel=channel)
    with transaction.atomic():
        channel.save()
        channel_audit(channel=channel, action="channel.create")
    return channel


def notification_channel_update(
    *,
    channel: NotificationChannel,
    name: str | None = None,
    url: str | None = None,
    recipients: list[str] | None = None,
    secret: str | None = None,
    events: list[str] | None = None,
    min_severity: str | None = None,
    send_resolved: bool | None = None,
    enabled: bool | None = None,
) -> NotificationChannel:
    """Change what is given (None keeps a value; the kind never changes), checked again as
    a whole: a new URL meets the host policy of now."""
    changes = {
        "name": None if name is None else name.strip(),
        "url": None if url is None else url.strip(),
        "recipients": None if recipients is None else [r.strip() for r in recipients],
        "secret": secret,
        "events": None if events is None else list(dict.fromkeys(events)),
        "min_severity": min_severity,
        "send_resolved": send_resolved,
        "enabled": enabled,
    }
    changed = [field for field, value in changes.items() if value is not None]
    before = channel_audit_values(channel)
    secret_changed = secret is not None and secret != channel.secret
    for field in changed:
        setattr(channel, field, changes[field])
    notification_channel_validate(channel=channel)
    if changed:
        with transaction.atomic():
            channel.save(update_fields=changed)
            channel_audit(
                channel=channel,
                action="channel.update",
                before=before,
                secret_changed=secret_changed,
            )
    return channel


def notification_channel_delete(*, channel: NotificationChannel) -> None:
    """Delete a channel and its delivery log; its queued attempts find nothing to do."""
    with transaction.atomic():
        channel_audit(channel=channel, action="channel.delete")
        channel.delete()


def channel_audit_values(channel: NotificationChannel) -> dict:
    """What the audit log may show of a channel: no secret, URLs as scheme and host."""
    return {
        "name": channel.name,
        "kind": channel.kind,
        "url": url_shown(channel.url) if channel.url else "",
        "recipients": list(channel.recipients or []),
        "events": list(channel.events or []),
        "minSeverity": channel.min_severity,
        "sendResolved": channel.send_resolved,
        "enabled": channel.enabled,
    }


def channel_audit(
    *,
    channel: NotificationChannel,
    action: str,
    before: dict | None = None,
    secret_changed: bool = False,
) -> None:
    """The audit event of a channel's creation, change (``before``: its values then) or
    deletion: the API, the pages and the admin all record through here. A secret is never
    shown, only that it changed."""
    details: dict | None = None
    if action == "channel.create":
        details = {"after": channel_audit_values(channel)}
    elif before is not None:
        details = changes(before, channel_audit_values(channel))
        if secret_changed:
            details["signing_key_changed"] = True
        elif not details["before"]:
            return  # nothing the log may show changed
    audit_record(
        organisation=channel.organisation_id,
        action=action,
        obj=AuditObject("channel", str(channel.pk), channel.name),
        details=details,
    )


def notification_channel_test(*, channel: NotificationChannel) -> NotificationDelivery:
    """Send a test message now (one attempt, in this request) and log it like any attempt.

    A test counts in the channel's failures in a row and its last delivery: it is a
    delivery, and a channel fixed by its admin is known to work once its test passes.
    """
    example = Alert(
        organisation=channel.organisation,
        kind=AlertKind.BACKUP_FAILED,
        severity=Severity.INFO,
        dedup_key="test",
        title=f"Test notification of channel {channel.name}",
        message="This is a test message from Strongbox: the channel works.",
    )
    delivery = NotificationDelivery.objects.create(
        channel=channel, alert=None, event=DeliveryEvent.TEST, error="In progress."
    )
    _send_and_log(channel=channel, alert=example, delivery=delivery)
    return delivery


# Notifications ---------------------------------------------------------------------------


def channels_to_notify(*, alert: Alert, event: str) -> list[NotificationChannel]:
    """The enabled channels that receive ``event`` of ``alert``: its kind and severity pass
    their filters, a resolved notice only where ``send_resolved``, and never the channel
    the alert is about."""
    channels = NotificationChannel.objects.filter(
        organisation_id=alert.organisation_id, enabled=True
    )
    if alert.channel_id:
        channels = channels.exclude(pk=alert.channel_id)
    if event == DeliveryEvent.RESOLVED:
        channels = channels.filter(send_resolved=True)
    return [channel for channel in channels.order_by("created_at") if channel.wants(alert)]


def _enqueue_notifications(alert_id, event: str = DeliveryEvent.RAISED) -> None:
    """One delivery task per channel that wants the notice. Runs on commit; never raises."""
    try:
        alert = Alert.objects.get(pk=alert_id)
        channel_ids = [channel.pk for channel in channels_to_notify(alert=alert, event=event)]
    except Exception:
        logger.exception("Could not look up notification channels for alert %s", alert_id)
        return
    for channel_id in channel_ids:
        try:
            async_task(DELIVERY_TASK, str(channel_id), str(alert_id), 1, str(event))
        except Exception:
            logger.exception("Could not enqueue notification of alert %s", alert_id)


def delivery_retry_delay(attempt: int) -> timedelta:
    """The wait after failed attempt ``attempt``: 30 s, 2 min, 8 min, 32 min."""
    return timedelta(seconds=30 * 4 ** (attempt - 1))


def _schedule_retry(*, channel: NotificationChannel, alert: Alert, attempt: int, event: str):
    """Run ``attempt`` later, as a one-off django-q2 schedule (no worker sleeps meanwhile)."""
    try:
        schedule(
            DELIVERY_TASK,
            str(channel.pk),
            str(alert.pk),
            attempt,
            str(event),
            # The name makes a duplicate schedule of the same attempt an IntegrityError.
            name=f"notify:{channel.pk}:{alert.pk}:{event}:{attempt}",
            schedule_type=Schedule.ONCE,
            next_run=timezone.now() + delivery_retry_delay(attempt - 1),
        )
    except IntegrityError:
        logger.info("Attempt %s of alert %s on %s is already scheduled", attempt, alert.pk, channel)


def notification_deliver(
    *,
    channel: NotificationChannel,
    alert: Alert,
    attempt: int = 1,
    event: str = DeliveryEvent.RAISED,
) -> NotificationDelivery | None:
    """Make one delivery attempt, log it, and schedule the next one if it may help.

    Returns the logged attempt, or None when there was nothing to do (the attempt was
    already claimed by another worker, or the channel is disabled or no longer wants the
    alert since it was enqueued).
    """
    if not channel.enabled or channel.organisation_id != alert.organisation_id:
        return None
    if alert.channel_id == channel.pk or not channel.wants(alert):
        return None
    if event == DeliveryEvent.RESOLVED and not channel.send_resolved:
        return None
    # Claim the attempt: the row is unique per (channel, alert, event, attempt), so a task
    # delivered twice sends once. "In progress" stays visible if the worker dies.
    try:
        with transaction.atomic():
            delivery = NotificationDelivery.objects.create(
                channel=channel, alert=alert, event=event, attempt=attempt, error="In progress."
            )
    except IntegrityError:
        logger.info("Attempt %s of alert %s on %s was already made", attempt, alert.pk, channel)
        return None

    result = _send_and_log(channel=channel, alert=alert, delivery=delivery)
    if not result.ok and result.retry and attempt < MAX_DELIVERY_ATTEMPTS:
        _schedule_retry(channel=channel, alert=alert, attempt=attempt + 1, event=event)
    return delivery


def _send_and_log(
    *, channel: NotificationChannel, alert: Alert, delivery: NotificationDelivery
) -> notifiers.DeliveryResult:
    try:
        notifier = notifiers.notifier_for(channel.kind)
        result = notifier.send(channel=channel, alert=alert, event=delivery.event)
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
    _count_outcome(channel=channel, delivery=delivery)
    return result


def _failure_key(channel: NotificationChannel) -> str:
    return f"{AlertKind.NOTIFICATION_FAILED}:channel:{channel.pk}"


def _count_outcome(*, channel: NotificationChannel, delivery: NotificationDelivery) -> None:
    """The channel's last delivery and failures in a row (counted in the database, so
    attempts finishing at once on several workers all count); ``notification_failed``
    raised at the threshold and on every later failure (one open alert, its occurrences
    counting), resolved by a success."""
    last = {
        "last_delivery_at": delivery.created_at,
        "last_delivery_ok": delivery.ok,
        "last_delivery_error": delivery.error,
    }
    rows = NotificationChannel.objects.filter(pk=channel.pk)
    if delivery.ok:
        rows.update(consecutive_failures=0, **last)
        channel.consecutive_failures = 0
        alert_resolve(organisation=channel.organisation, dedup_key=_failure_key(channel))
        return
    rows.update(consecutive_failures=F("consecutive_failures") + 1, **last)
    failures = rows.values_list("consecutive_failures", flat=True).first() or 0
    channel.consecutive_failures = failures
    if failures >= settings.STRONGBOX_NOTIFICATION_FAILURES_ALERT:
        alert_raise(
            organisation=channel.organisation,
            kind=AlertKind.NOTIFICATION_FAILED,
            severity=Severity.WARNING,
            title=f"Notification channel {channel.name} is failing",
            message=f"{failures} deliveries in a row failed; the last: {delivery.error}",
            dedup_key=_failure_key(channel),
            channel=channel,
        )
