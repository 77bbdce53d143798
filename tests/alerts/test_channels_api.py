"""/api/notification-channels: admins manage channels; URLs and secrets stay write-only."""

import json

import pytest
from django.db import connection

from alerts.models import NotificationChannel, NotificationDelivery
from organizations.models import Role
from organizations.services import host_policy_set
from tests import factories

pytestmark = pytest.mark.django_db

SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"


@pytest.fixture
def admin(client_for, organisation):
    return client_for(organisation, Role.ADMIN)


def create(client, **body):
    return client.post("/api/notification-channels", body, format="json")


def stored(channel_id, column):
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {column} FROM alerts_notificationchannel WHERE id = %s",  # noqa: S608
            [channel_id.replace("-", "") if connection.vendor == "sqlite" else channel_id],
        )
        return cursor.fetchone()[0]


def test_an_admin_creates_an_apprise_channel_whose_url_is_masked_and_encrypted(admin):
    response = create(
        admin,
        name="Ops Slack",
        kind="apprise",
        url=SLACK,
        events=["backup_failed", "restore_failed"],
        minSeverity="warning",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {
        "id": body["id"],
        "name": "Ops Slack",
        "kind": "apprise",
        "url": "slack://****",
        "recipients": [],
        "events": ["backup_failed", "restore_failed"],
        "minSeverity": "warning",
        "sendResolved": True,
        "enabled": True,
        "lastDelivery": None,
    }
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in response.content.decode()
    raw = stored(body["id"], "url")
    assert raw.startswith("enc1:") and "TIiajk" not in raw
    assert NotificationChannel.objects.get(pk=body["id"]).url == SLACK


def test_a_webhook_secret_is_write_only_and_stored_encrypted(admin, webhook_receiver):
    response = create(
        admin, name="Hook", kind="webhook", url=webhook_receiver.url, secret="whsec-91"
    )

    assert response.status_code == 201, response.content
    text = response.content.decode()
    assert "whsec-91" not in text and "/hooks/strongbox" not in text
    host = webhook_receiver.url.split("/")[2]
    assert response.json()["url"] == f"http://{host}/****"
    assert stored(response.json()["id"], "secret").startswith("enc1:")
    listed = admin.get("/api/notification-channels").json()
    assert listed["count"] == 1 and "whsec-91" not in json.dumps(listed)


def test_an_email_channel_takes_valid_recipients(admin):
    response = create(
        admin, name="Ops", kind="email", recipients=["ops@example.com", "dba@example.com"]
    )
    assert response.status_code == 201, response.content
    assert response.json()["recipients"] == ["ops@example.com", "dba@example.com"]
    assert response.json()["url"] == ""


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"kind": "apprise", "url": "bogus://nothing"}, "url", "Not an apprise URL"),
        ({"kind": "apprise", "url": ""}, "url", "needs its apprise URL"),
        ({"kind": "apprise", "url": "dbus://"}, "url", "Not an apprise URL"),
        ({"kind": "apprise", "url": "json://169.254.169.254/latest"}, "url", "may reach"),
        ({"kind": "webhook", "url": "ftp://example.com/hook"}, "url", "http://"),
        ({"kind": "webhook", "url": "http://169.254.169.254/"}, "url", "may reach"),
        ({"kind": "webhook", "url": "http://[fd00:ec2::254]/"}, "url", "may reach"),
        ({"kind": "email", "recipients": ["not an address"]}, "recipients", "not a valid"),
        ({"kind": "email"}, "recipients", "at least one"),
        ({"kind": "email", "recipients": ["a@b.example"], "secret": "x"}, "secret", "webhook"),
        ({"kind": "email", "recipients": ["a@b.example"], "events": ["nope"]}, "events", ""),
        (
            {"kind": "email", "recipients": ["a@b.example"], "minSeverity": "loud"},
            "minSeverity",
            "",
        ),
        ({"kind": "email", "recipients": ["a@b.example"], "colour": "red"}, "colour", "Unknown"),
        ({"kind": "email", "recipients": ["a@b.example"], "enabled": 1}, "enabled", "boolean"),
        ({"kind": "pager", "url": "x"}, "kind", ""),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(admin, body, field, text):
    response = create(admin, name="Bad", **body)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    # A nested problem is named by its dotted path (``events.0``).
    assert any(name.split(".")[0] == field for name in error["fields"]), error
    assert text in json.dumps(error)
    assert NotificationChannel.objects.count() == 0


def test_a_host_the_policy_forbids_is_refused_on_create_for_apprise_and_webhooks(
    admin, organisation, webhook_receiver
):
    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])
    port = webhook_receiver.url.split(":")[2].split("/")[0]

    for kind, url in [
        ("apprise", f"json://127.0.0.1:{port}/hooks"),
        ("apprise", f"ntfy://127.0.0.1:{port}/topic"),
        ("webhook", webhook_receiver.url),
    ]:
        response = create(admin, name="Local", kind=kind, url=url)
        assert response.status_code == 400, (kind, url)
        assert "may reach" in response.json()["error"]["fields"]["url"][0]

    assert create(admin, name="Slack", kind="apprise", url=SLACK).status_code == 201


def test_patch_changes_what_is_given_and_keeps_the_stored_url(admin, organisation):
    channel = factories.NotificationChannelFactory(
        organisation=organisation, kind="apprise", url=SLACK, secret=""
    )

    response = admin.patch(
        f"/api/notification-channels/{channel.pk}",
        {"name": "Renamed", "events": ["wal_lag"], "minSeverity": "critical", "enabled": False},
        format="json",
    )

    assert response.status_code == 200, response.content
    channel.refresh_from_db()
    assert (channel.name, channel.events, channel.min_severity, channel.enabled) == (
        "Renamed",
        ["wal_lag"],
        "critical",
        False,
    )
    assert channel.url == SLACK
    refused = admin.patch(
        f"/api/notification-channels/{channel.pk}", {"kind": "email"}, format="json"
    )
    assert refused.status_code == 400 and "kind" in refused.json()["error"]["fields"]
    bad_url = admin.patch(
        f"/api/notification-channels/{channel.pk}", {"url": "bogus://"}, format="json"
    )
    assert bad_url.status_code == 400 and "url" in bad_url.json()["error"]["fields"]
    channel.refresh_from_db()
    assert channel.url == SLACK


def test_another_organisations_channel_is_a_404_and_untouched(
    client_for, organisation, other_organisation
):
    theirs = factories.NotificationChannelFactory(organisation=other_organisation, name="Theirs")
    admin = client_for(organisation, Role.ADMIN)
    path = f"/api/notification-channels/{theirs.pk}"

    assert admin.get(path).status_code == 404
    assert admin.patch(path, {"name": "Mine now"}, format="json").status_code == 404
    assert admin.post(f"{path}/test").status_code == 404
    assert admin.delete(path).status_code == 404
    assert admin.get("/api/notification-channels").json()["count"] == 0

    theirs.refresh_from_db()
    assert theirs.name == "Theirs"
    assert NotificationDelivery.objects.count() == 0


def test_operators_and_viewers_cannot_read_channels(client_for, organisation):
    for role in (Role.OPERATOR, Role.VIEWER):
        assert client_for(organisation, role).get("/api/notification-channels").status_code == 403


def test_the_list_pages_with_limit_and_offset(admin, organisation):
    for n in range(7):
        factories.NotificationChannelFactory(organisation=organisation, name=f"c{n}")

    page = admin.get("/api/notification-channels", {"limit": 3, "offset": 3}).json()

    assert page["count"] == 7 and page["limit"] == 3 and page["offset"] == 3
    assert [c["name"] for c in page["results"]] == ["c3", "c4", "c5"]


def test_send_test_posts_to_an_apprise_json_receiver_and_records_the_delivery(
    admin, organisation, webhook_receiver
):
    url = webhook_receiver.url.replace("http://", "json://")
    channel_id = create(admin, name="Receiver", kind="apprise", url=url).json()["id"]

    response = admin.post(f"/api/notification-channels/{channel_id}/test")

    assert response.status_code == 200, response.content
    assert response.json()["ok"] is True
    [received] = webhook_receiver.requests
    body = json.loads(received.body)
    assert body["title"] == "[Strongbox] Test: Test notification of channel Receiver"
    assert "the channel works" in body["message"]
    assert body["type"] == "info"
    [delivery] = NotificationDelivery.objects.filter(channel_id=channel_id)
    assert (delivery.event, delivery.ok, delivery.alert) == ("test", True, None)
    last = admin.get(f"/api/notification-channels/{channel_id}").json()["lastDelivery"]
    assert last["ok"] is True and last["error"] == ""


def test_send_test_answers_the_failure_of_a_channel_that_does_not_deliver(admin, dead_url):
    channel_id = create(admin, name="Dead", kind="webhook", url=dead_url).json()["id"]

    response = admin.post(f"/api/notification-channels/{channel_id}/test")

    assert response.status_code == 200
    assert response.json()["ok"] is False
    assert "Cannot connect" in response.json()["error"]
    last = admin.get(f"/api/notification-channels/{channel_id}").json()["lastDelivery"]
    assert last["ok"] is False and "Cannot connect" in last["error"]


def test_delete_removes_the_channel_and_its_log(admin, organisation):
    channel = factories.NotificationChannelFactory(organisation=organisation)

    assert admin.delete(f"/api/notification-channels/{channel.pk}").status_code == 204
    assert not NotificationChannel.objects.filter(pk=channel.pk).exists()
