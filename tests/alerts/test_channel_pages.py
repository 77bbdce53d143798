"""The /notifications/ pages, through Django's test client: same services, same checks."""

import pytest
from django.urls import reverse

from alerts.models import NotificationChannel, NotificationDelivery
from organizations.services import host_policy_set
from tests import factories

pytestmark = pytest.mark.django_db

SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"


def form(**values):
    base = {"name": "Ops", "kind": "apprise", "min_severity": "info", "enabled": "on"}
    return {**base, **values}


def test_only_admins_see_the_notifications_page_and_its_link(client, owner, operator):
    client.force_login(operator)
    assert client.get(reverse("notification-channels")).status_code == 403
    assert "/notifications/" not in client.get(reverse("alerts-inbox")).content.decode()
    client.force_login(owner)
    assert client.get(reverse("notification-channels")).status_code == 200
    assert 'href="/notifications/"' in client.get(reverse("alerts-inbox")).content.decode()


def test_an_admin_creates_a_channel_and_its_url_is_never_shown_again(client, owner):
    client.force_login(owner)

    response = client.post(
        reverse("notification-channel-new"),
        form(url=SLACK, events=["backup_failed", "wal_lag"], min_severity="warning"),
    )

    assert response.status_code == 302
    channel = NotificationChannel.objects.get(name="Ops")
    assert (channel.url, channel.events, channel.min_severity) == (
        SLACK,
        ["backup_failed", "wal_lag"],
        "warning",
    )
    for page in (
        reverse("notification-channels"),
        reverse("notification-channel-edit", args=[channel.pk]),
    ):
        html = client.get(page).content.decode()
        assert "slack://****" in html and "TIiajk" not in html


def test_the_form_shows_the_services_errors_next_to_the_fields(client, owner, organisation):
    client.force_login(owner)
    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])

    bad = client.post(reverse("notification-channel-new"), form(url="json://127.0.0.1:9/"))
    assert bad.status_code == 400 and "may reach" in bad.content.decode()
    email = client.post(
        reverse("notification-channel-new"), form(kind="email", recipients="ops@x.example\nnope")
    )
    assert (
        email.status_code == 400
        and "&#x27;nope&#x27; is not a valid email" in email.content.decode()
    )
    assert NotificationChannel.objects.count() == 0


def test_editing_keeps_the_url_when_left_blank(client, owner, organisation):
    channel = factories.NotificationChannelFactory(
        organisation=organisation, kind="apprise", url=SLACK, secret="", name="Ops"
    )
    client.force_login(owner)

    response = client.post(
        reverse("notification-channel-edit", args=[channel.pk]),
        form(name="Ops chat", url="", min_severity="critical"),
    )

    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.url, channel.min_severity, channel.send_resolved) == (
        "Ops chat",
        SLACK,
        "critical",
        False,  # an unticked checkbox
    )


def test_send_test_reports_the_outcome_and_the_edit_page_shows_the_delivery_log(
    client, owner, organisation, webhook_receiver, dead_url
):
    good = factories.NotificationChannelFactory(
        organisation=organisation,
        kind="apprise",
        secret="",
        name="Good",
        url=webhook_receiver.url.replace("http://", "json://"),
    )
    dead = factories.NotificationChannelFactory(
        organisation=organisation, url=dead_url, name="Dead"
    )
    client.force_login(owner)

    ok = client.post(reverse("notification-channel-test", args=[good.pk]), follow=True)
    assert "Good: test message delivered." in ok.content.decode()
    failed = client.post(reverse("notification-channel-test", args=[dead.pk]), follow=True)
    assert "Dead: the test message failed: Cannot connect" in failed.content.decode()

    log = client.get(reverse("notification-channel-edit", args=[dead.pk])).content.decode()
    assert 'id="delivery-log"' in log and "Cannot connect" in log
    assert len(webhook_receiver.requests) == 1


def test_another_organisations_channel_is_a_404_on_every_page(client, owner, other_organisation):
    theirs = factories.NotificationChannelFactory(organisation=other_organisation, name="Theirs")
    client.force_login(owner)

    assert client.get(reverse("notification-channel-edit", args=[theirs.pk])).status_code == 404
    for name in ("notification-channel-test", "notification-channel-delete"):
        assert client.post(reverse(name, args=[theirs.pk])).status_code == 404
    assert NotificationChannel.objects.filter(pk=theirs.pk).exists()
    assert NotificationDelivery.objects.count() == 0


def test_an_admin_deletes_a_channel(client, owner, organisation):
    channel = factories.NotificationChannelFactory(organisation=organisation, name="Old")
    client.force_login(owner)

    response = client.post(reverse("notification-channel-delete", args=[channel.pk]), follow=True)

    assert "Channel “Old” deleted." in response.content.decode()
    assert not NotificationChannel.objects.exists()
