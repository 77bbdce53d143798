"""Webhooks under the host policy, delivered to a real HTTP receiver on loopback."""

import urllib.request
from urllib.parse import urlsplit

import pytest

from alerts.models import AlertKind, NotificationChannel, NotificationDelivery, Severity
from alerts.notifiers.webhook import _opener_for
from alerts.tasks import deliver_notification
from organizations.services import host_policy_set
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def alert(organisation, environment):
    return factories.AlertFactory(
        organisation=organisation,
        environment=environment,
        kind=AlertKind.BACKUP_FAILED,
        severity=Severity.CRITICAL,
        title="Backup of orders failed",
    )


def deliver(channel, alert):
    return deliver_notification(str(channel.pk), str(alert.pk), 1)


def test_a_webhook_inside_the_policy_is_delivered(organisation, alert, webhook_receiver):
    host_policy_set(organisation=organisation, allowed_hosts=["127.0.0.0/8"])
    channel = factories.NotificationChannelFactory(
        organisation=organisation, url=webhook_receiver.url
    )
    assert deliver(channel, alert) is True
    assert len(webhook_receiver.requests) == 1


def test_a_webhook_outside_the_policy_is_refused_sends_nothing_and_is_not_retried(
    organisation, other_organisation, alert, webhook_receiver, scheduled_retries
):
    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])
    host_policy_set(organisation=other_organisation, allowed_hosts=["127.0.0.0/8"])
    channel = factories.NotificationChannelFactory(
        organisation=organisation, url=webhook_receiver.url
    )

    assert deliver(channel, alert) is False

    assert webhook_receiver.requests == []
    assert "may reach" in NotificationDelivery.objects.get(alert=alert).error
    assert scheduled_retries() == []


def test_a_webhook_to_the_metadata_service_is_refused_without_any_policy(organisation, alert):
    channel = factories.NotificationChannelFactory(
        organisation=organisation, url="http://169.254.169.254/latest/meta-data/"
    )
    assert deliver(channel, alert) is False
    assert "may reach" in NotificationDelivery.objects.get(alert=alert).error


def test_the_request_goes_to_the_checked_address_and_keeps_the_name_in_the_host_header(
    webhook_receiver,
):
    # A name no resolver knows: only the checked address can have reached the receiver.
    port = urlsplit(webhook_receiver.url).port
    url = f"http://Checked-Only.invalid.:{port}/hooks/strongbox"  # any spelling of it
    opener = _opener_for(urlsplit(url).hostname, ["127.0.0.1"])
    request = urllib.request.Request(url, data=b"{}", method="POST")  # noqa: S310 - http

    with opener.open(request, timeout=5) as response:
        assert response.status == 200

    [received] = webhook_receiver.requests
    assert received.headers["Host"] == f"Checked-Only.invalid.:{port}"


def test_the_admin_refuses_a_webhook_channel_outside_the_policy(
    client, django_user_model, organisation
):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])
    form = {
        "organisation": organisation.pk,
        "name": "Ops hook",
        "kind": "webhook",
        "secret": "",
        "recipients": "[]",
        "events": "[]",
        "min_severity": "info",
        "enabled": "on",
    }
    url = "/admin/alerts/notificationchannel/add/"

    refused = client.post(url, {**form, "url": "http://192.0.2.7/hook"})
    assert refused.status_code == 200 and "may reach" in refused.content.decode()
    accepted = client.post(url, {**form, "url": "http://10.1.2.3/hook"})
    assert accepted.status_code == 302
    assert NotificationChannel.objects.get().url == "http://10.1.2.3/hook"
