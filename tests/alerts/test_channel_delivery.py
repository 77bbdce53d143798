"""Delivering notices through channels of every kind, to real receivers on loopback:
apprise's json:// posts, email through aiosmtpd, filters, resolved notices, retries and
the notification_failed alert of a channel that keeps failing."""

import json
import socket
import threading

import pytest

from alerts.models import (
    Alert,
    AlertKind,
    DeliveryEvent,
    NotificationChannel,
    NotificationDelivery,
    Severity,
)
from alerts.services import (
    DELIVERY_TASK,
    alert_raise,
    alert_resolve,
    notification_channel_create,
)
from alerts.tasks import deliver_notification
from organizations.hostpolicy import HostNotAllowed, guarded_resolution, parse_rules
from organizations.services import host_policy_set
from tests import factories

pytestmark = pytest.mark.django_db


def json_url(receiver) -> str:
    return receiver.url.replace("http://", "json://")


def apprise_channel(organisation, url, **extra):
    return factories.NotificationChannelFactory(
        organisation=organisation, kind="apprise", url=url, secret="", **extra
    )


def raise_alert(organisation, environment, kind=AlertKind.BACKUP_FAILED, severity="critical"):
    return alert_raise(
        organisation=organisation,
        kind=kind,
        severity=severity,
        title=f"{kind} in staging",
        message="pg_dump exited with status 1",
        environment=environment,
    )


def run_queued(queued_deliveries):
    """Run every queued delivery task here, as the worker would (in queue order)."""
    results = []
    for func, args in queued_deliveries():
        assert func == DELIVERY_TASK
        results.append((args[0], deliver_notification(*args)))
    return results


def test_an_apprise_json_channel_receives_title_message_and_type(
    organisation,
    environment,
    webhook_receiver,
    queued_deliveries,
    django_capture_on_commit_callbacks,
):
    channel = apprise_channel(organisation, json_url(webhook_receiver))

    with django_capture_on_commit_callbacks(execute=True):
        alert = raise_alert(organisation, environment)
    assert run_queued(queued_deliveries) == [(str(channel.pk), True)]

    [received] = webhook_receiver.requests
    assert received.path == "/hooks/strongbox"
    body = json.loads(received.body)
    assert body["title"] == "[Strongbox] Critical: backup_failed in staging"
    assert "pg_dump exited with status 1" in body["message"]
    assert "Organisation: Quant Gov" in body["message"]
    assert body["type"] == "failure"
    delivery = NotificationDelivery.objects.get(alert=alert)
    assert (delivery.event, delivery.ok, delivery.attempt) == ("raised", True, 1)
    channel.refresh_from_db()
    assert channel.last_delivery_ok is True and channel.last_delivery_at is not None


def test_when_the_alert_resolves_channels_get_a_resolved_notice(
    organisation,
    environment,
    webhook_receiver,
    queued_deliveries,
    django_capture_on_commit_callbacks,
):
    channel = apprise_channel(organisation, json_url(webhook_receiver))
    apprise_channel(organisation, json_url(webhook_receiver), send_resolved=False)  # quiet
    with django_capture_on_commit_callbacks(execute=True):
        alert = raise_alert(organisation, environment, severity="warning")
    run_queued(queued_deliveries)
    assert [json.loads(r.body)["type"] for r in webhook_receiver.requests] == ["warning"] * 2
    webhook_receiver.requests.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert alert_resolve(organisation=organisation, dedup_key=alert.dedup_key) == 1
        assert alert_resolve(organisation=organisation, dedup_key=alert.dedup_key) == 0
    resolved = [(func, args) for func, args in queued_deliveries() if args[3] == "resolved"]

    assert [args[0] for _, args in resolved] == [str(channel.pk)]  # not the quiet one
    assert deliver_notification(*resolved[0][1]) is True
    [received] = webhook_receiver.requests
    body = json.loads(received.body)
    assert body["type"] == "success"
    assert body["title"] == "[Strongbox] Resolved: backup_failed in staging"
    assert "This alert is resolved" in body["message"]
    assert NotificationDelivery.objects.filter(alert=alert, event="resolved").count() == 1


def test_channels_receive_only_the_kinds_and_severities_they_ask_for(
    organisation,
    other_organisation,
    environment,
    queued_deliveries,
    django_capture_on_commit_callbacks,
):
    everything = apprise_channel(organisation, "json://127.0.0.1:9/")
    failures_only = apprise_channel(
        organisation, "json://127.0.0.1:9/", events=[AlertKind.BACKUP_FAILED]
    )
    critical_only = apprise_channel(
        organisation, "json://127.0.0.1:9/", min_severity=Severity.CRITICAL
    )
    apprise_channel(organisation, "json://127.0.0.1:9/", enabled=False)
    apprise_channel(other_organisation, "json://127.0.0.1:9/")

    def notified(kind, severity):
        with django_capture_on_commit_callbacks(execute=True):
            alert = raise_alert(organisation, environment, kind=kind, severity=severity)
        return {args[0] for _, args in queued_deliveries() if args[1] == str(alert.pk)}

    assert notified(AlertKind.BACKUP_FAILED, "critical") == {
        str(everything.pk),
        str(failures_only.pk),
        str(critical_only.pk),
    }
    assert notified(AlertKind.WAL_LAG, "warning") == {str(everything.pk)}
    assert notified(AlertKind.SCHEDULE_MISSED, "critical") == {
        str(everything.pk),
        str(critical_only.pk),
    }
    assert notified(AlertKind.RETENTION_DELETED, "info") == {str(everything.pk)}


def test_a_channel_whose_filter_changed_since_it_was_queued_sends_nothing(
    organisation, environment, webhook_receiver
):
    channel = apprise_channel(organisation, json_url(webhook_receiver))
    alert = factories.AlertFactory(
        organisation=organisation, environment=environment, severity="info"
    )
    channel.min_severity = "warning"
    channel.save()

    assert deliver_notification(str(channel.pk), str(alert.pk), 1, "raised") is None
    assert webhook_receiver.requests == []


def test_an_apprise_host_the_policy_forbids_fails_at_send_time_and_is_not_retried(
    organisation, other_organisation, environment, webhook_receiver, scheduled_retries
):
    # Saved when the policy allowed it; the operator has narrowed the policy since.
    channel = apprise_channel(organisation, json_url(webhook_receiver))
    alert = factories.AlertFactory(organisation=organisation, environment=environment)
    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])
    host_policy_set(organisation=other_organisation, allowed_hosts=["*"])

    assert deliver_notification(str(channel.pk), str(alert.pk), 1, "raised") is False

    assert webhook_receiver.requests == []
    delivery = NotificationDelivery.objects.get(alert=alert)
    assert "may reach" in delivery.error
    assert scheduled_retries() == []


@pytest.mark.parametrize(
    "url",
    [
        "json://169.254.169.254/latest/meta-data/",
        "json://[fd00:ec2::254]/",
        "ntfy://169.254.170.2/t",
    ],
)
def test_an_apprise_url_to_a_metadata_address_never_connects(
    organisation, environment, url, scheduled_retries
):
    channel = apprise_channel(organisation, url)  # as if saved before the rule existed
    alert = factories.AlertFactory(organisation=organisation, environment=environment)

    assert deliver_notification(str(channel.pk), str(alert.pk), 1, "raised") is False

    assert "may reach" in NotificationDelivery.objects.get(alert=alert).error
    assert scheduled_retries() == []


def test_the_resolution_guard_holds_only_the_thread_that_delivers():
    refuse_all = parse_rules(["10.0.0.0/8"])
    other_thread: list = []
    with guarded_resolution(refuse_all) as guard:
        worker = threading.Thread(
            target=lambda: other_thread.append(socket.getaddrinfo("127.0.0.1", 80))
        )
        worker.start()
        worker.join()
        with pytest.raises(HostNotAllowed):
            socket.getaddrinfo("127.0.0.1", 80)
    assert other_thread and other_thread[0]
    assert guard.refused and "may reach" in guard.refused
    assert socket.getaddrinfo("127.0.0.1", 80)  # after the block, as before


def test_a_failed_apprise_delivery_is_retried_with_backoff_then_succeeds(
    organisation, environment, webhook_receiver, scheduled_retries
):
    channel = apprise_channel(organisation, json_url(webhook_receiver))
    alert = factories.AlertFactory(organisation=organisation, environment=environment)
    webhook_receiver.respond_with(503)

    assert deliver_notification(str(channel.pk), str(alert.pk), 1, "raised") is False
    [(retry, args)] = scheduled_retries()
    assert args == (str(channel.pk), str(alert.pk), 2, "raised")
    failed = NotificationDelivery.objects.get(alert=alert, attempt=1)
    assert "503" in failed.error

    assert deliver_notification(*args) is True
    assert list(
        NotificationDelivery.objects.filter(alert=alert)
        .order_by("attempt")
        .values_list("attempt", "ok")
    ) == [(1, False), (2, True)]
    assert len(webhook_receiver.requests) == 2


def test_three_failures_in_a_row_raise_notification_failed_on_the_other_channels_only(
    organisation,
    environment,
    dead_url,
    webhook_receiver,
    queued_deliveries,
    django_capture_on_commit_callbacks,
):
    failing = apprise_channel(organisation, dead_url.replace("http://", "json://"), name="Pager")
    other = apprise_channel(organisation, json_url(webhook_receiver), name="Chat")
    alerts = [
        factories.AlertFactory(organisation=organisation, environment=environment) for _ in range(3)
    ]

    with django_capture_on_commit_callbacks(execute=True):
        for alert in alerts[:2]:
            assert deliver_notification(str(failing.pk), str(alert.pk), 1, "raised") is False
        assert not Alert.objects.filter(kind=AlertKind.NOTIFICATION_FAILED).exists()
        assert deliver_notification(str(failing.pk), str(alerts[2].pk), 1, "raised") is False

    failed = Alert.objects.get(kind=AlertKind.NOTIFICATION_FAILED)
    assert failed.channel == failing
    assert failed.title == "Notification channel Pager is failing"
    assert "3 deliveries in a row failed" in failed.message
    notices = [args for _, args in queued_deliveries() if args[1] == str(failed.pk)]
    assert notices == [(str(other.pk), str(failed.pk), 1, "raised")]  # never the failing one
    assert deliver_notification(*notices[0]) is True
    assert json.loads(webhook_receiver.requests[0].body)["title"].endswith("Pager is failing")
    # Even if asked to, the failing channel is not sent its own alert: no loop.
    assert deliver_notification(str(failing.pk), str(failed.pk), 1, "raised") is None

    # A fourth failure counts on the same alert; it is not notified again.
    fourth = factories.AlertFactory(organisation=organisation, environment=environment)
    with django_capture_on_commit_callbacks(execute=True):
        deliver_notification(str(failing.pk), str(fourth.pk), 1, "raised")
    failed.refresh_from_db()
    assert failed.occurrences == 2 and "4 deliveries" in failed.message

    # The channel delivers again: the alert resolves, and the others hear so.
    failing.url = json_url(webhook_receiver)
    failing.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver_notification(str(failing.pk), str(alerts[0].pk), 2, "raised") is True
    failed.refresh_from_db()
    failing.refresh_from_db()
    assert failed.resolved_at is not None and failing.consecutive_failures == 0
    resolved = [args for _, args in queued_deliveries() if args[3] == "resolved"]
    assert resolved == [(str(other.pk), str(failed.pk), 1, "resolved")]


def test_an_email_channel_sends_to_each_recipient_through_a_real_smtp_server(
    organisation, environment, settings, mail_server
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = mail_server.host, mail_server.port
    settings.DEFAULT_FROM_EMAIL = "strongbox@quant.example"
    channel = notification_channel_create(
        organisation=organisation,
        name="Ops mail",
        kind=NotificationChannel.Kind.EMAIL,
        recipients=["ops@quant.example", "dba@quant.example"],
    )
    alert = factories.AlertFactory(
        organisation=organisation,
        environment=environment,
        title="Backup of orders failed",
        severity="critical",
    )

    assert deliver_notification(str(channel.pk), str(alert.pk), 1, "raised") is True

    [envelope] = mail_server.envelopes
    assert envelope.mail_from == "strongbox@quant.example"
    assert envelope.rcpt_tos == ["ops@quant.example", "dba@quant.example"]
    assert b"Subject: [Strongbox] Critical: Backup of orders failed" in envelope.content


def test_an_apprise_mailto_url_sends_through_a_real_smtp_server(
    organisation, environment, mail_server
):
    url = (
        f"mailto://{mail_server.host}:{mail_server.port}"
        "?to=oncall@quant.example&from=strongbox@quant.example&mode=insecure"
    )
    channel = notification_channel_create(
        organisation=organisation, name="Mail via apprise", kind="apprise", url=url
    )
    alert = factories.AlertFactory(
        organisation=organisation, environment=environment, title="WAL archiving stopped"
    )

    assert deliver_notification(str(channel.pk), str(alert.pk), 1, "raised") is True, (
        NotificationDelivery.objects.get(alert=alert).error
    )

    [envelope] = mail_server.envelopes
    assert envelope.rcpt_tos == ["oncall@quant.example"]
    assert b"WAL archiving stopped" in envelope.content


def test_deliveries_log_each_attempt_with_its_event(organisation, environment, dead_url):
    channel = apprise_channel(organisation, dead_url.replace("http://", "json://"))
    alert = factories.AlertFactory(organisation=organisation, environment=environment)

    for attempt in (1, 2, 3):
        deliver_notification(str(channel.pk), str(alert.pk), attempt, "raised")
    deliver_notification(str(channel.pk), str(alert.pk), 1, "raised")  # a duplicate task

    log = NotificationDelivery.objects.filter(alert=alert).order_by("attempt")
    assert [(d.attempt, d.event, d.ok) for d in log] == [
        (1, DeliveryEvent.RAISED, False),
        (2, DeliveryEvent.RAISED, False),
        (3, DeliveryEvent.RAISED, False),
    ]
    assert all(d.error for d in log)


def test_a_webhook_gets_a_signed_alert_resolved_event(
    organisation,
    environment,
    webhook_receiver,
    queued_deliveries,
    django_capture_on_commit_callbacks,
):
    hook = factories.NotificationChannelFactory(
        organisation=organisation, url=webhook_receiver.url, secret="whsec-5"
    )
    alert = factories.AlertFactory(organisation=organisation, environment=environment)

    with django_capture_on_commit_callbacks(execute=True):
        alert_resolve(organisation=organisation, dedup_key=alert.dedup_key)
    [(_, args)] = queued_deliveries()
    assert args == (str(hook.pk), str(alert.pk), 1, "resolved")
    assert deliver_notification(*args) is True

    [received] = webhook_receiver.requests
    assert received.headers["X-Strongbox-Event"] == "alert.resolved"
    body = json.loads(received.body)
    assert body["event"] == "alert.resolved" and body["alert"]["resolved_at"]
    assert received.headers["X-Strongbox-Signature"].startswith("sha256=")
