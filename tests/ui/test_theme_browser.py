"""Dark mode in Chromium: it follows the system's colour scheme, the toggle overrides it and
is remembered, and status badges keep a contrast of at least 4.5:1 in both themes."""

from __future__ import annotations

import pytest

from backups.models import BackupStatus
from organizations.models import Role
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# WCAG's contrast ratio of an element's text colour on its own background, in the page.
CONTRAST = """(el) => {
  const rgb = (s) => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const style = getComputedStyle(el);
  const [a, b] = [lum(rgb(style.color)), lum(rgb(style.backgroundColor))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""
BODY_BACKGROUND = "() => getComputedStyle(document.body).backgroundColor"


@pytest.fixture
def statuses(ui_org):
    """An environment with a backup of each status a list shows."""
    organisation, people = ui_org
    project = factories.ProjectFactory(organisation=organisation, name="Shop", slug="shop")
    environment = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    for status in (BackupStatus.COMPLETED, BackupStatus.FAILED, BackupStatus.IN_PROGRESS):
        factories.BackupFactory(environment=environment, status=status)
    return environment, people[Role.VIEWER]


def _badges_contrast(page) -> dict[str, float]:
    badges = page.locator("table [data-status]")
    return {
        badges.nth(i).get_attribute("data-status"): badges.nth(i).evaluate(CONTRAST)
        for i in range(badges.count())
    }


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_status_badges_are_readable_in_either_theme(
    browser, live_app, statuses, sign_in, screenshot, scheme
):
    environment, viewer = statuses
    context = browser.new_context(base_url=live_app, color_scheme=scheme)
    page = context.new_page()
    try:
        sign_in(page, viewer.username)
        page.goto(f"/projects/{environment.project_id}/environments/{environment.id}/")
        ratios = _badges_contrast(page)
        screenshot(page, f"30-environment-{scheme}")
    finally:
        context.close()

    assert {"completed", "failed", "in-progress"} <= set(ratios)
    assert all(ratio >= 4.5 for ratio in ratios.values()), ratios


def test_the_system_scheme_is_followed_until_the_toggle_picks_one_which_is_remembered(
    browser, live_app, statuses, sign_in
):
    _, viewer = statuses
    context = browser.new_context(base_url=live_app, color_scheme="dark")
    page = context.new_page()
    try:
        sign_in(page, viewer.username)
        dark = page.evaluate(BODY_BACKGROUND)
        toggle = page.locator("[data-theme-toggle]")
        assert (
            toggle.text_content() == "Light mode" and toggle.get_attribute("aria-pressed") == "true"
        )

        toggle.click()
        light = page.evaluate(BODY_BACKGROUND)
        page.reload()
        after_reload = page.evaluate(BODY_BACKGROUND)
        chosen = page.evaluate("() => document.documentElement.dataset.theme")
    finally:
        context.close()

    assert dark == "rgb(15, 19, 24)"
    assert light == after_reload == "rgb(246, 247, 249)"
    assert chosen == "light"
