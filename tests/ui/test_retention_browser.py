"""The retention preview of an environment with several databases, in a real browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from backups.models import BackupTrigger
from organizations.models import Role
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_viewer_sees_what_retention_keeps_of_each_database(page, ui_org, sign_in, screenshot):
    organisation, people = ui_org
    project = factories.ProjectFactory(organisation=organisation, name="Shop", slug="shop")
    environment = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    factories.ScheduleFactory(environment=environment, retain_db_daily=7, timezone="Europe/London")
    night = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    newest = {}
    # Users DB is dumped a minute before Orders DB every night, for ten nights.
    for minute, name in enumerate(("Users DB", "Orders DB")):
        database = factories.DatabaseFactory(environment=environment, name=name)
        for day in reversed(range(10)):
            newest[name] = factories.BackupFactory(
                environment=environment,
                database=database,
                trigger=BackupTrigger.SCHEDULED,
                created_at=night - timedelta(days=day) + timedelta(minutes=minute),
                size=1024 * 1024,
            )

    sign_in(page, people[Role.VIEWER].username)
    page.goto(f"/environments/{environment.id}/retention/")

    per_database = page.locator("#retention-per-database tbody tr")
    expect(per_database).to_have_count(2)
    for name in ("Orders DB", "Users DB"):
        line = per_database.filter(has_text=name)
        expect(line.get_by_test_id("per-database-proposed")).to_have_text(
            "keeps 7, deletes 3, frees 3.0 MB"
        )
        row = page.locator(f'tr[data-backup-id="{newest[name].id}"]')
        expect(row).to_have_attribute("data-decision", "keep")
        expect(row).to_contain_text(f"{name} · Database · Scheduled")
    expect(page.get_by_test_id("retention-summary")).to_contain_text("deletes 6")
    screenshot(page, "12-retention-preview-per-database")
