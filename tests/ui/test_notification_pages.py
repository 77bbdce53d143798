"""The notifications page in a real browser: an admin adds an apprise channel, sends a test
message to a loopback receiver, reads the delivery log, and deletes the channel."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from alerts.models import NotificationChannel
from organizations.models import Role
from tests.alerts.conftest import webhook_receiver  # noqa: F401 - a fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_an_admin_adds_an_apprise_channel_sends_a_test_and_deletes_it(
    page,
    ui_org,
    sign_in,
    screenshot,
    webhook_receiver,  # noqa: F811 - the fixture imported above
):
    organisation, people = ui_org
    url = webhook_receiver.url.replace("http://", "json://")

    sign_in(page, people[Role.ADMIN].username)
    page.get_by_role("link", name="Notifications").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Notifications")
    page.get_by_role("link", name="Add a channel").click()
    page.get_by_label("Name").fill("Ops receiver")
    page.get_by_label("Kind").select_option("apprise")
    page.get_by_label("URL").fill("bogus://nowhere")
    page.get_by_role("button", name="Create channel").click()
    expect(page.get_by_text("Not an apprise URL that Strongbox can notify")).to_be_visible()

    page.get_by_label("URL").fill(url)
    page.get_by_label("Backup Failed").check()
    page.get_by_label("Minimum severity").select_option("warning")
    page.get_by_role("button", name="Create channel").click()
    expect(page.get_by_text("Channel “Ops receiver” created.")).to_be_visible()
    row = page.locator("#channel-list tbody tr").first
    expect(row).to_contain_text("json://****")
    expect(row).to_contain_text("backup_failed, warning and above")
    assert webhook_receiver.url.split("/")[2] not in page.content()  # the URL stays secret

    row.get_by_role("button", name="Send a test message to Ops receiver").click()
    expect(page.get_by_text("Ops receiver: test message delivered.")).to_be_visible()
    expect(page.get_by_test_id("last-delivery")).to_contain_text("Delivered")
    [received] = webhook_receiver.requests
    assert json.loads(received.body)["type"] == "info"
    screenshot(page, "40-notification-channels")

    page.get_by_role("link", name="Edit Ops receiver").click()
    expect(page.locator("#delivery-log")).to_contain_text("Test")
    expect(page.locator("#delivery-log")).to_contain_text("Delivered")
    screenshot(page, "41-notification-channel-deliveries")

    page.get_by_role("link", name="Notifications").first.click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete Ops receiver").click()
    expect(page.get_by_text("Channel “Ops receiver” deleted.")).to_be_visible()
    assert not NotificationChannel.objects.filter(organisation=organisation).exists()
