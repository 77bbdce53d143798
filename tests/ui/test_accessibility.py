"""Every page, checked by axe-core (from the npm registry, injected by Playwright) in Debian's
Chromium, in both themes: no serious or critical WCAG 2 A/AA violation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.urls import reverse

from backups.models import BackupStatus
from organizations.models import Role
from restores.models import RestoreStatus
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
RUN_AXE = """async () => {
  const result = await axe.run(document, {
    runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
  });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" "))}));
}"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.exists():
        message = f"{AXE} is missing: scripts/setup installs it (STRONGBOX_WITH_BROWSER=1)."
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return AXE.read_text()


@pytest.fixture
def every_page(ui_org):
    """One of everything, and the path of every page an admin can open."""
    organisation, people = ui_org
    project = factories.ProjectFactory(organisation=organisation, name="Shop", slug="shop")
    environment = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    database = factories.DatabaseFactory(environment=environment, name="Orders", slug="orders")
    destination = factories.DestinationFactory(organisation=organisation, name="Disk")
    backup = factories.BackupFactory(
        environment=environment, database=database, status=BackupStatus.COMPLETED
    )
    factories.BackupCopyFactory(backup=backup, destination=destination)
    factories.BackupFactory(environment=environment, database=database, status="failed")
    restore = factories.RestoreFactory(backup=backup, status=RestoreStatus.COMPLETED)
    factories.ScheduleFactory(environment=environment)
    factories.AlertFactory(organisation=organisation, environment=environment)
    channel = factories.NotificationChannelFactory(organisation=organisation)
    env, pk = {"environment_id": environment.id}, {"pk": backup.id}
    pages = [
        reverse("dashboard"),
        reverse("project-new"),
        reverse("project-detail", kwargs={"pk": project.id}),
        reverse("project-edit", kwargs={"pk": project.id}),
        reverse("environment-new", kwargs={"project_id": project.id}),
        reverse("environment-detail", kwargs={"project_id": project.id, "pk": environment.id}),
        reverse("environment-edit", kwargs={"pk": environment.id}),
        reverse("database-new", kwargs=env),
        reverse("database-detail", kwargs={"pk": database.id}),
        reverse("database-edit", kwargs={"pk": database.id}),
        reverse("backup-detail", kwargs=pk),
        reverse("backup-delete", kwargs=pk),
        reverse("restore-new", kwargs=pk),
        reverse("restores-list"),
        reverse("restore-detail", kwargs={"pk": restore.id}),
        reverse("alerts-inbox"),
        reverse("destinations-list"),
        reverse("destination-new"),
        reverse("destination-edit", kwargs={"pk": destination.id}),
        reverse("schedule-edit", kwargs=env),
        reverse("retention-preview", kwargs=env),
        reverse("api-tokens"),
        reverse("members"),
        reverse("encryption-settings"),
        reverse("security-settings"),
        reverse("two-factor"),
        reverse("notification-channels"),
        reverse("notification-channel-new"),
        reverse("notification-channel-edit", kwargs={"pk": channel.id}),
        reverse("audit-log"),
        reverse("evidence"),
    ]
    return people[Role.ADMIN], pages


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_has_no_serious_accessibility_violation(
    browser, live_app, every_page, sign_in, axe_source, scheme
):
    admin, pages = every_page
    context = browser.new_context(base_url=live_app, color_scheme=scheme)
    page = context.new_page()
    found = {}
    try:
        page.goto("/login/")
        page.add_script_tag(content=axe_source)
        found["/login/"] = page.evaluate(RUN_AXE)
        # The check itself works: an image without a text alternative is critical.
        page.evaluate("() => document.body.append(document.createElement('img'))")
        assert [v["id"] for v in page.evaluate(RUN_AXE)] == ["image-alt"]
        sign_in(page, admin.username)
        for path in pages:
            response = page.goto(path)
            assert response is not None and response.status == 200, path
            page.add_script_tag(content=axe_source)
            found[path] = page.evaluate(RUN_AXE)
    finally:
        context.close()

    problems = {path: violations for path, violations in found.items() if violations}
    assert problems == {}, json.dumps(problems, indent=1)
