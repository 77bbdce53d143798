"""Two-factor authentication in Chromium against the live server: a user sets it up from
the QR page's key (typed in, as into an app), is shown their recovery codes, signs out, and
signs in again with the password and then a code; a wrong code is refused."""

from __future__ import annotations

import base64

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from organizations.models import Role
from tests.organizations.helpers import current_code, fresh_code, wrong_code

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_enrol_sign_out_and_sign_in_with_a_code(page, live_app, ui_org, sign_in, screenshot):
    _, people = ui_org
    admin = people[Role.ADMIN]
    sign_in(page, admin.username)

    page.get_by_role("link", name="Two-factor").click()
    expect(page.get_by_test_id("two-factor-state")).to_contain_text("Off")
    page.get_by_role("button", name="Set up two-factor").click()
    expect(page.get_by_test_id("totp-qr").locator("svg")).to_be_visible()
    typed = page.get_by_test_id("totp-secret").inner_text().replace(" ", "")
    screenshot(page, "two-factor-setup")

    device = TOTPDevice.objects.get(user=admin, confirmed=False)
    # The key shown for typing in is the device's: an app given it shows the device's codes.
    assert base64.b32decode(typed + "=" * (-len(typed) % 8)) == device.bin_key
    page.get_by_label("Code").fill(wrong_code(device))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("That code is not right")).to_be_visible()
    page.get_by_label("Code").fill(current_code(device))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status").first).to_contain_text("Two-factor authentication is on.")
    expect(page.get_by_test_id("recovery-codes").locator("li")).to_have_count(10)
    screenshot(page, "two-factor-recovery-codes")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login/")
    page.get_by_label("Username").fill(admin.username)
    page.get_by_label("Password").fill("password")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/login/code/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Two-factor code")
    screenshot(page, "two-factor-sign-in")
    page.goto("/")
    page.wait_for_url("**/login/?next=/")  # not signed in before the code

    page.goto("/login/code/")
    page.get_by_label("Code").fill(fresh_code(device))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{live_app}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Quant Gov")
