"""The main pages on a 390 px phone, in both themes: nothing wider than the screen (wide
tables scroll inside their own box, never the page), and axe-core finds no serious or
critical WCAG 2 A/AA violation in either theme. Full-page screenshots of each go to
/tmp/shots/ (not committed) for a person to look at."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from backups.models import BackupStatus
from drills.models import Drill
from organizations.models import Role
from restores.models import RestoreStatus
from tests import factories
from tests.ui.test_accessibility import RUN_AXE, axe_source  # noqa: F401 - a fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
SHOTS = Path("/tmp/shots")  # noqa: S108 - screenshots for a person, outside the repository

# The elements that stick out past the right edge of the screen, outermost first, outside
# any box that scrolls by itself (what makes the page scroll sideways).
OVERFLOW = """() => {
  const width = window.innerWidth;
  const scrolls = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const x = getComputedStyle(p).overflowX;
      if (x === "auto" || x === "scroll" || x === "hidden") { return true; }
    }
    return false;
  };
  const wide = [...document.body.querySelectorAll("*")].filter((el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.right > width + 0.5 && !scrolls(el);
  });
  const outermost = wide.filter((el) => !wide.includes(el.parentElement));
  return {
    scrollWidth: document.scrollingElement.scrollWidth,
    innerWidth: width,
    culprits: outermost.slice(0, 5).map((el) =>
      el.tagName.toLowerCase()
      + (el.className ? "." + String(el.className).split(" ").join(".") : "")
      + " right=" + Math.round(el.getBoundingClientRect().right)),
  };
}"""

LONG_ERROR = (
    "The backup failed: pg_dump: error: connection to server at "
    '"db-primary.eu-west-1.internal.example.com" (10.20.30.40), port 5432 failed: '
    "FATAL: password authentication failed for user "
    '"strongbox_backup_operator_with_a_long_name"'
)


def _phases(names, started, status="SUCCESS"):
    items, at = [], started
    for name in names:
        ended = at + timedelta(seconds=2)
        items.append(
            {
                "name": name,
                "status": status,
                "started_at": at.isoformat(),
                "finished_at": ended.isoformat(),
                "duration_sec": 2.0,
            }
        )
        at = ended
    return items


@pytest.fixture
def main_pages(ui_org):
    """An organisation as customers have it (long names, a failure, a restore, PITR, a
    drill, alerts), and each main page's name and path."""
    organisation, people = ui_org
    now = timezone.now()
    project = factories.ProjectFactory(
        organisation=organisation, name="Customer billing platform", slug="billing"
    )
    environment = factories.EnvironmentFactory(
        project=project, name="Production (eu-west-1)", slug="production"
    )
    postgres = factories.DatabaseFactory(
        environment=environment,
        name="Invoices and payment ledger",
        slug="invoices",
        engine="postgresql",
        host="db-primary.eu-west-1.internal.example.com",
        port=5432,
        username="strongbox",
        database_name="invoices_and_payment_ledger_production",
    )
    destination = factories.DestinationFactory(organisation=organisation, name="Local disk")
    started = now - timedelta(hours=1)
    backup = factories.BackupFactory(
        environment=environment,
        database=postgres,
        name="quant-gov-billing-production-invoices-2026-12-07T01-00-00-000Z",
        status=BackupStatus.COMPLETED,
        engine="postgresql",
        engine_version="15.20",
        size=123_456_789,
        compression="zstd",
        checksum_sha256="ad9b600147c9497120798f63b4f915353ad3b3679a5194deccd5a2684a0b3121",
        started_at=started,
        completed_at=started + timedelta(seconds=8),
        phases=_phases(("DUMP", "COMPRESS", "UPLOAD", "VERIFY"), started),
        row_counts={"public.invoices": 120_000, "public.payments": 98_000},
    )
    factories.BackupCopyFactory(backup=backup, destination=destination, size=123_456_789)
    failed = factories.BackupFactory(
        environment=environment,
        database=postgres,
        status=BackupStatus.FAILED,
        message=LONG_ERROR,
        started_at=started,
        completed_at=started + timedelta(seconds=1),
        phases=_phases(("DUMP",), started, status="ERROR"),
    )
    restore = factories.RestoreFactory(
        backup=backup,
        status=RestoreStatus.COMPLETED,
        started_at=started,
        completed_at=started + timedelta(seconds=10),
        bytes_done=123_456_789,
        phases=_phases(("VERIFY", "SAFETY_BACKUP", "RESTORE", "CHECK", "SWAP"), started),
        message=f"Restored {backup.name} into {environment}, replacing the database "
        "Invoices and payment ledger (PostgreSQL).",
    )
    factories.ScheduleFactory(environment=environment, wal_enabled=True, retain_daily=7)
    factories.AlertFactory(
        organisation=organisation,
        environment=environment,
        title=f"Backup {failed.name} failed",
        message=LONG_ERROR,
        severity="critical",
    )
    factories.NotificationChannelFactory(organisation=organisation)
    Drill.objects.create(
        environment=environment,
        database=postgres,
        backup=backup,
        status="passed",
        started_at=started,
        finished_at=started + timedelta(seconds=30),
        rto_seconds=30.0,
        expected_rows=218_000,
        restored_rows=218_000,
        throwaway_name="strongbox_drill_3f9a2c1b",
    )
    env = {"environment_id": environment.id}
    pages = {
        "dashboard": reverse("dashboard"),
        "organisation-members": reverse("members"),
        "project": reverse("project-detail", kwargs={"pk": project.id}),
        "environment-and-pitr": reverse(
            "environment-detail", kwargs={"project_id": project.id, "pk": environment.id}
        ),
        "database": reverse("database-detail", kwargs={"pk": postgres.id}),
        "backup": reverse("backup-detail", kwargs={"pk": backup.id}),
        "backup-failed": reverse("backup-detail", kwargs={"pk": failed.id}),
        "restore-form-pitr": reverse("restore-new", kwargs={"pk": backup.id}),
        "restore": reverse("restore-detail", kwargs={"pk": restore.id}),
        "restores": reverse("restores-list"),
        "schedule": reverse("schedule-edit", kwargs=env),
        "retention-preview": reverse("retention-preview", kwargs=env),
        "alerts": reverse("alerts-inbox"),
        "notifications": reverse("notification-channels"),
        "audit": reverse("audit-log"),
        "evidence": reverse("evidence"),
        "destinations": reverse("destinations-list"),
    }
    return people[Role.ADMIN], pages


@pytest.mark.parametrize("scheme", ["dark", "light"])
def test_the_main_pages_fit_a_phone_and_pass_axe_in_either_theme(
    browser,
    live_app,
    main_pages,
    sign_in,
    axe_source,  # noqa: F811 - the fixture imported above
    scheme,
):
    admin, pages = main_pages
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(base_url=live_app, viewport=PHONE, color_scheme=scheme)
    context.set_default_timeout(15_000)
    page = context.new_page()
    overflow, violations = {}, {}
    try:
        sign_in(page, admin.username)
        for name, path in pages.items():
            response = page.goto(path)
            assert response is not None and response.status == 200, path
            page.screenshot(path=str(SHOTS / f"{name}-390-{scheme}.png"), full_page=True)
            measured = page.evaluate(OVERFLOW)
            if measured["scrollWidth"] > measured["innerWidth"]:
                overflow[name] = measured
            page.add_script_tag(content=axe_source)
            found = page.evaluate(RUN_AXE)
            if found:
                violations[name] = found
    finally:
        context.close()

    problems = {"overflow": overflow, "axe": violations}
    assert problems == {"overflow": {}, "axe": {}}, json.dumps(problems, indent=1)
