"""Webhook delivery to a real HTTP server on loopback: signature, retries, dead endpoints."""

import hashlib
import hmac
import json
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import AlertKind, NotificationDelivery, Severity
from alerts.services import (
    DELIVERY_TASK,
    MAX_DELIVERY_ATTEMPTS,
    alert_raise,
    delivery_retry_delay,
)
from alerts.tasks import deliver_notification
from tests import factories

SECRET = "whsec-3f9a"


@pytest.fixture
def alert(organisation, environment):
    return factories.AlertFactory(
        organisation=organisation,
        environment=environment,
        kind=AlertKind.BACKUP_FAILED,
        severity=Severity.CRITICAL,
        title="Backup of orders failed",
        message="pg_dump exited with status 1",
    )


@pytest.fixture
def hook(organisation, webhook_receiver):
    return factories.NotificationChannelFactory(
        organisation=organisation, url=webhook_receiver.url, secret=SECRET
    )


def deliver(channel, alert, attempt=1):
    return deliver_notification(str(channel.pk), str(alert.pk), attempt)


def attempts(alert):
    return list(
        NotificationDelivery.objects.filter(alert=alert)
        .order_by("attempt")
        .values_list("attempt", "ok", "status_code")
    )


def test_it_posts_the_alert_as_json_signed_with_the_channel_secret(hook, alert, webhook_receiver):
    assert deliver(hook, alert) is True

    [received] = webhook_receiver.requests
    # Verified as a receiver would: HMAC of the raw body, compared in constant time.
    expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(received.headers["X-Strongbox-Signature"], expected)
    assert received.path == "/hooks/strongbox"
    assert received.headers["Content-Type"] == "application/json"
    body = json.loads(received.body)
    assert body["event"] == "alert.raised"
    assert body["alert"]["id"] == str(alert.pk)
    assert body["alert"]["kind"] == "backup_failed"
    assert body["alert"]["severity"] == "critical"
    assert body["alert"]["title"] == "Backup of orders failed"
    assert body["alert"]["organisation"]["slug"] == "quant-gov"
    assert body["alert"]["environment"]["name"] == "Dashboard / Staging"
    assert attempts(alert) == [(1, True, 200)]


def test_a_channel_without_a_secret_sends_no_signature(organisation, alert, webhook_receiver):
    channel = factories.NotificationChannelFactory(
        organisation=organisation, url=webhook_receiver.url, secret=""
    )

    deliver(channel, alert)

    [received] = webhook_receiver.requests
    assert "X-Strongbox-Signature" not in received.headers


def test_it_retries_after_a_500_with_backoff_then_succeeds(
    hook, alert, webhook_receiver, scheduled_retries
):
    webhook_receiver.respond_with(500)

    assert deliver(hook, alert) is False

    [(retry, args)] = scheduled_retries()
    assert retry.func == DELIVERY_TASK
    assert args == (str(hook.pk), str(alert.pk), 2, "raised")
    wait = retry.next_run - timezone.now()
    assert timedelta(seconds=25) < wait <= timedelta(seconds=30)
    failed = NotificationDelivery.objects.get(alert=alert, attempt=1)
    assert failed.status_code == 500
    assert "receiver is unwell" in failed.error

    assert deliver_notification(*args) is True  # what the scheduler runs when it is due

    assert attempts(alert) == [(1, False, 500), (2, True, 200)]
    assert len(webhook_receiver.requests) == 2
    assert len(scheduled_retries()) == 1  # success schedules nothing more


def test_the_backoff_grows_fourfold_per_attempt():
    assert [delivery_retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [
        30,
        120,
        480,
        1920,
    ]


def test_it_gives_up_after_the_last_attempt(hook, alert, webhook_receiver, scheduled_retries):
    webhook_receiver.respond_with(*[503] * MAX_DELIVERY_ATTEMPTS)

    for attempt in range(1, MAX_DELIVERY_ATTEMPTS + 1):
        assert deliver(hook, alert, attempt) is False

    assert [args[2] for _, args in scheduled_retries()] == [2, 3, 4, 5]
    assert [row[1:] for row in attempts(alert)] == [(False, 503)] * MAX_DELIVERY_ATTEMPTS


def test_a_client_error_is_logged_and_not_retried(hook, alert, webhook_receiver, scheduled_retries):
    webhook_receiver.respond_with(401)

    deliver(hook, alert)

    assert attempts(alert) == [(1, False, 401)]
    assert scheduled_retries() == []


def test_an_attempt_delivered_twice_is_sent_once(hook, alert, webhook_receiver):
    deliver(hook, alert)

    assert deliver(hook, alert) is None

    assert len(webhook_receiver.requests) == 1
    assert attempts(alert) == [(1, True, 200)]


def test_a_dead_endpoint_does_not_fail_the_raise_and_is_logged_as_failed(
    organisation,
    environment,
    dead_url,
    queued_deliveries,
    scheduled_retries,
    django_capture_on_commit_callbacks,
):
    factories.NotificationChannelFactory(organisation=organisation, url=dead_url)

    with django_capture_on_commit_callbacks(execute=True):
        alert = alert_raise(
            organisation=organisation,
            kind=AlertKind.SCHEDULE_MISSED,
            title="Nightly backup did not start",
            environment=environment,
        )

    [(func, args)] = queued_deliveries()
    assert (func, args[1:]) == (DELIVERY_TASK, (str(alert.pk), 1, "raised"))
    assert deliver_notification(*args) is False
    delivery = NotificationDelivery.objects.get(alert=alert)
    assert delivery.status_code is None
    assert "Cannot connect" in delivery.error
    assert [args[2] for _, args in scheduled_retries()] == [2]


def test_a_receiver_that_never_answers_times_out_and_is_retried(
    organisation, alert, settings, scheduled_retries
):
    settings.STRONGBOX_WEBHOOK_TIMEOUT_SECONDS = 0.3
    with socket.socket() as silent:  # the kernel accepts the connection; nobody replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        channel = factories.NotificationChannelFactory(
            organisation=organisation, url=f"http://127.0.0.1:{port}/hook"
        )

        assert deliver(channel, alert) is False

    delivery = NotificationDelivery.objects.get(alert=alert)
    assert "timed out" in delivery.error
    assert len(scheduled_retries()) == 1


def test_it_refuses_urls_that_are_not_http(organisation, alert, scheduled_retries):
    channel = factories.NotificationChannelFactory(
        organisation=organisation, url="file:///etc/passwd"
    )

    deliver(channel, alert)

    delivery = NotificationDelivery.objects.get(alert=alert)
    assert "Not an http(s) URL" in delivery.error
    assert scheduled_retries() == []


def test_a_channel_of_another_organisation_is_never_sent_this_alert(
    other_organisation, alert, webhook_receiver
):
    foreign = factories.NotificationChannelFactory(
        organisation=other_organisation, url=webhook_receiver.url
    )

    assert deliver(foreign, alert) is None

    assert webhook_receiver.requests == []


def test_a_disabled_channel_sends_nothing(hook, alert, webhook_receiver):
    hook.enabled = False
    hook.save()

    assert deliver(hook, alert) is None

    assert webhook_receiver.requests == []
    assert attempts(alert) == []


def test_django_q2s_scheduler_turns_a_due_retry_into_a_queued_task(
    hook, alert, webhook_receiver, scheduled_retries, queued_deliveries, monkeypatch
):
    from django_q import scheduler as django_q_scheduler

    # The scheduler closes "old" connections, which would close the test's transaction.
    monkeypatch.setattr(django_q_scheduler, "close_old_django_connections", lambda: None)
    webhook_receiver.respond_with(502)
    deliver(hook, alert)
    [(retry, args)] = scheduled_retries()
    retry.next_run = timezone.now() - timedelta(seconds=1)
    retry.save()

    django_q_scheduler.scheduler()

    assert queued_deliveries() == [(DELIVERY_TASK, args)]
    assert scheduled_retries() == []  # a one-off schedule is gone once it has fired
