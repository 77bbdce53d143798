"""Onboarding end to end in Debian's Chromium, at 1280 px and 390 px, against a live server,
a real django-q2 worker and a real throwaway PostgreSQL database: create a project, an
environment and a database (its connection tested, showing the server's version), back it
up from its page, and watch the strip show the success."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from backups.models import Backup, BackupStatus
from organizations.models import Database, Role
from tests import factories
from tests.backups.helpers import restore_database_artifact
from tests.fixtures.databases import fill_postgres, table_checksums

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(params=sorted(WIDTHS))
def sized_page(request, browser, live_app, transactional_db):
    context = browser.new_context(base_url=live_app, viewport=WIDTHS[request.param])
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield request.param, page
    finally:
        context.close()


def shot(page, name: str) -> None:
    from tests.ui.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def described_ids_exist(page) -> None:
    """Every aria-describedby on the page names elements that exist."""
    missing = page.evaluate(
        """() => [...document.querySelectorAll('[aria-describedby]')].flatMap(el =>
            el.getAttribute('aria-describedby').split(/\\s+/)
              .filter(id => id && !document.getElementById(id)))"""
    )
    assert missing == []


@pytest.fixture
def server_artifacts(settings, server_env):
    """This process reads the artifacts where the live server's worker wrote them."""
    settings.STRONGBOX_LOCAL_DESTINATION_ROOT = server_env["STRONGBOX_LOCAL_DESTINATION_ROOT"]


def test_a_new_admin_onboards_a_postgresql_database_and_backs_it_up(
    sized_page, ui_org, sign_in, make_postgres_database, server_artifacts
):
    width, page = sized_page
    organisation, people = ui_org
    spec = make_postgres_database()
    fill_postgres(spec, rows=300)

    sign_in(page, people[Role.ADMIN].username)
    checklist = page.get_by_test_id("checklist")
    expect(checklist).to_be_visible()
    expect(checklist.locator('[data-done="true"]')).to_have_count(0)
    shot(page, f"onboarding-01-empty-dashboard-{width}")

    checklist.get_by_role("link", name="Add a database").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New project")
    page.get_by_role("button", name="Create project").click()  # nothing typed
    name = page.get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    described_ids_exist(page)
    shot(page, f"onboarding-02-project-error-{width}")
    name.fill("Shop")
    page.get_by_role("button", name="Create project").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("New environment of Shop")
    page.get_by_label("Name").fill("Production")
    page.get_by_role("button", name="Create environment").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("New database in Production")
    page.locator("#id_name").fill("Orders")  # "Username" and "Database name" also say name
    page.get_by_label("Engine").select_option("postgresql")
    page.get_by_label("Host").fill(spec.host)
    page.get_by_label("Port").fill(str(spec.port))
    page.get_by_label("Username").fill(spec.user)
    page.get_by_label("Database name").fill(spec.name)
    page.get_by_role("button", name="Test connection").click()
    result = page.get_by_test_id("connection-result")
    expect(result).to_contain_text(re.compile(r"Connected\. Server version \d+\.\d+"))
    shot(page, f"onboarding-03-database-tested-{width}")
    page.get_by_role("button", name="Add database").click()

    database = Database.objects.get(environment__project__organisation=organisation)
    expect(page).to_have_url(re.compile(rf"/databases/{database.id}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Orders")
    # No destination yet: the button says why it cannot back up.
    expect(page.get_by_role("button", name="Back up now")).to_be_disabled()
    factories.DestinationFactory(organisation=organisation, name="Local disk")
    page.reload()

    page.get_by_role("button", name="Back up now").click()
    expect(page.get_by_text("Backup started")).to_be_visible()
    backup = Backup.objects.get(database=database)
    status = page.locator(f'[data-status-for="{backup.id}"]')
    expect(status).to_have_text("Completed", timeout=60_000)
    backup.refresh_from_db()
    assert backup.status == BackupStatus.COMPLETED and backup.row_counts
    restored = make_postgres_database()
    restore_database_artifact(backup, restored)
    assert table_checksums(restored) == table_checksums(spec)

    page.reload()
    strip = page.get_by_test_id("run-strip")
    expect(strip.locator('[data-outcome="ok"]')).to_have_count(1)
    expect(page.get_by_test_id("rate-7")).to_contain_text("100.0 %")
    expect(page.locator("#size-chart-desc")).to_have_count(1)
    described_ids_exist(page)
    shot(page, f"onboarding-04-database-page-{width}")

    page.get_by_role("link", name="Shop").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Shop")
    expect(page.get_by_test_id("environment-state")).to_have_text("Healthy")
    shot(page, f"onboarding-05-project-page-{width}")

    page.get_by_role("link", name="Dashboard").first.click()
    checklist = page.get_by_test_id("checklist")
    expect(checklist.locator('[data-done="true"]')).to_have_count(3)  # the schedule is left
    shot(page, f"onboarding-06-dashboard-{width}")

    page.get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Members")
    expect(page.locator("#member-list tbody tr")).to_have_count(3)
    described_ids_exist(page)
    shot(page, f"onboarding-07-members-{width}")


def test_a_failed_backup_turns_the_environment_red_and_retry_from_the_page_fixes_it(
    page, ui_org, sign_in, make_postgres_database, screenshot
):
    organisation, people = ui_org
    spec = make_postgres_database()
    fill_postgres(spec, rows=50)
    project = factories.ProjectFactory(organisation=organisation, name="Shop", slug="shop")
    environment = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    good = factories.DatabaseFactory(
        environment=environment,
        name="Users",
        slug="users",
        engine="postgresql",
        host=spec.host,
        port=spec.port,
        username=spec.user,
        database_name=spec.name,
    )
    broken = factories.DatabaseFactory(
        environment=environment,
        name="Orders",
        slug="orders",
        engine="postgresql",
        host=spec.host,
        port=spec.port,
        username=spec.user,
        database_name="sbx_no_such_database",
    )
    factories.DestinationFactory(organisation=organisation, name="Local disk")
    sign_in(page, people[Role.ADMIN].username)

    for database in (broken, good):  # the good one last: the environment's newest backup
        page.goto(f"/databases/{database.id}/")
        page.get_by_role("button", name="Back up now").click()
        backup = Backup.objects.get(database=database)
        final = "Failed" if database == broken else "Completed"
        expect(page.locator(f'[data-status-for="{backup.id}"]')).to_have_text(final, timeout=60_000)

    page.goto("/")
    expect(page.get_by_test_id("environment-state")).to_have_text("Failing")
    expect(page.locator('a.db-chip[data-state="failed"]')).to_have_text(re.compile("Orders"))
    screenshot(page, "onboarding-08-dashboard-failing")
    screenshot(page, "onboarding-08-dashboard-failing-phone", phone=True)

    page.goto(f"/databases/{broken.id}/")
    expect(page.get_by_test_id("run-strip").locator('[data-outcome="failed"]')).to_have_count(1)
    expect(page.locator("#backup-list")).to_contain_text("sbx_no_such_database")
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Database name").fill(spec.name)
    page.get_by_role("button", name="Save").click()
    failed = Backup.objects.get(database=broken)
    page.get_by_role("button", name=f"Retry {failed.name}").click()
    expect(page.get_by_text("Retrying")).to_be_visible()
    retry = Backup.objects.filter(database=broken).exclude(pk=failed.pk).get()
    expect(page.locator(f'[data-status-for="{retry.id}"]')).to_have_text(
        "Completed", timeout=60_000
    )
    page.reload()
    strip = page.get_by_test_id("run-strip")
    expect(strip.locator("[data-outcome]")).to_have_count(2)
    expect(strip.locator("li").nth(0).locator("[data-outcome]")).to_have_attribute(
        "data-outcome", "failed"
    )
    expect(strip.locator("li").nth(1).locator("[data-outcome]")).to_have_attribute(
        "data-outcome", "ok"
    )
    expect(page.get_by_test_id("rate-7")).to_contain_text("50.0 %")
    screenshot(page, "onboarding-09-database-retried")
    screenshot(page, "onboarding-09-database-retried-phone", phone=True)

    page.goto("/")
    expect(page.get_by_test_id("environment-state")).to_have_text("Healthy")
