"""The sign-in page under uvicorn, as people meet it: after the default limit of wrong
passwords (``STRONGBOX_LOGIN_FAILURE_LIMIT``, 10) the right one is refused with the lockout
message; a colleague on the same machine still signs in."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from organizations.models import Role

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DEFAULT_LIMIT = 10


def _try(page, username: str, password: str):
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Sign in").click()
    return navigation.value


def test_the_sign_in_page_shows_the_lockout_and_refuses_the_right_password(
    page, ui_org, sign_in, screenshot
):
    _, people = ui_org
    viewer, operator = people[Role.VIEWER].username, people[Role.OPERATOR].username
    for _ in range(DEFAULT_LIMIT - 1):
        assert _try(page, viewer, "wrong").status == 200
    assert _try(page, viewer, "wrong").status == 429

    refused = _try(page, viewer, "password")
    assert refused.status == 429
    assert 0 < int(refused.headers["retry-after"]) <= 15 * 60
    expect(page.get_by_role("status")).to_contain_text("Too many failed sign-ins")
    expect(page.get_by_label("Username")).to_have_value(viewer)
    expect(page).to_have_url("/login/")
    screenshot(page, "lockout-sign-in")

    sign_in(page, operator)
    expect(page.get_by_role("heading", level=1)).to_have_text("Quant Gov")
