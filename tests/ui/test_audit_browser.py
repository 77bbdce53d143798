"""The audit log in a real browser: an admin signs in on the form, follows the navigation to
the audit log, finds that sign-in and a failed one, and filters; an operator has no link."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from organizations.models import Role

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_an_admin_finds_sign_ins_in_the_audit_log_and_filters_them(
    page, ui_org, sign_in, screenshot
):
    organisation, people = ui_org
    admin = people[Role.ADMIN].username
    page.goto("/login/")
    page.get_by_label("Username").fill(admin)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Please enter a correct username and password")).to_be_visible()

    sign_in(page, admin)
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    rows = page.locator("#audit-events tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-action", "auth.login")
    expect(rows.nth(1)).to_have_attribute("data-action", "auth.login_failed")
    expect(rows.nth(0)).to_contain_text(admin)
    expect(rows.nth(0)).to_contain_text("127.0.0.1")
    screenshot(page, "40-audit-log")

    page.get_by_label("Action").select_option("auth.login_failed")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_contain_text("failure")

    page.get_by_label("Since").fill("not a date")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("Enter an ISO 8601 date-time")).to_be_visible()
    screenshot(page, "41-audit-log-bad-filter", phone=True)


def test_an_operator_has_no_audit_log(page, ui_org, sign_in):
    _, people = ui_org
    sign_in(page, people[Role.OPERATOR].username)
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    response = page.goto("/audit/")
    assert response is not None and response.status == 403
