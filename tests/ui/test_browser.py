"""The main flows in a real browser against a live server and a real worker."""

from __future__ import annotations

import re
import sqlite3
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from alerts.models import Alert
from backups.models import Backup, BackupStatus
from organizations.models import ApiToken, Role
from tests import factories
from tests.fixtures.tenants import tenant_path

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def make_sqlite_database(path, rows: int = 4000) -> str:
    """A small SQLite database with a few megabytes of incompressible rows."""
    import os

    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, payload BLOB)")
        conn.executemany(
            "INSERT INTO readings (payload) VALUES (?)", ((os.urandom(2048),) for _ in range(rows))
        )
    return str(path)


def test_a_member_signs_in_and_sees_the_dashboard(page, ui_org, sign_in, screenshot):
    organisation, people = ui_org
    project = factories.ProjectFactory(organisation=organisation, name="Website", slug="website")
    factories.EnvironmentFactory(project=project, name="Production", slug="production")

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/"))
    screenshot(page, "01-sign-in")
    page.get_by_label("Username").fill(people[Role.VIEWER].username)
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    screenshot(page, "01-sign-in-error")

    sign_in(page, people[Role.VIEWER].username)
    expect(page.get_by_role("heading", level=1)).to_have_text("Quant Gov")
    expect(page.get_by_role("link", name="Production")).to_be_visible()
    screenshot(page, "02-dashboard")
    screenshot(page, "02-dashboard-phone", phone=True)


def test_an_operator_triggers_a_backup_and_watches_it_complete(page, ui_org, sign_in, screenshot):
    organisation, people = ui_org
    project = factories.ProjectFactory(organisation=organisation, name="Website", slug="website")
    environment = factories.EnvironmentFactory(project=project, name="Staging", slug="staging")
    factories.DatabaseFactory(
        environment=environment,
        name="Orders",
        slug="orders",
        engine="sqlite",
        database_name=make_sqlite_database(tenant_path(organisation, "orders.sqlite3")),
    )
    factories.DestinationFactory(organisation=organisation, name="Local disk")

    sign_in(page, people[Role.OPERATOR].username)
    page.get_by_role("link", name="Staging").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Staging")
    page.get_by_role("button", name="Back up now").click()

    expect(page.get_by_text("Backup started")).to_be_visible()
    backup = Backup.objects.get(environment=environment)
    row = page.locator(f'tr[data-backup-id="{backup.id}"]')
    bar = row.get_by_role("progressbar")
    expect(bar).to_be_visible()
    screenshot(page, "03-environment-backup-running")

    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=60_000)
    expect(row.locator(f'[data-status-for="{backup.id}"]')).to_have_text("Completed")
    screenshot(page, "04-environment-backup-completed")
    backup.refresh_from_db()
    assert backup.status == BackupStatus.COMPLETED

    page.reload()
    expect(page.locator("svg[role=img]")).to_be_visible()  # the size chart has a point now
    screenshot(page, "04-environment-phone", phone=True)

    row.get_by_role("link", name=backup.name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(backup.name)
    expect(page.get_by_text(backup.checksum_sha256)).to_be_visible()
    expect(page.locator(".timeline li")).to_have_count(4)  # dump, compress, upload, verify
    expect(page.get_by_role("cell", name="Stored")).to_be_visible()
    screenshot(page, "05-backup-detail")
    screenshot(page, "05-backup-detail-phone", phone=True)


def test_an_operator_dismisses_an_alert_and_the_badge_drops(page, ui_org, sign_in, screenshot):
    organisation, people = ui_org
    factories.AlertFactory(
        organisation=organisation, title="Backup of orders failed", severity="critical"
    )
    factories.AlertFactory(organisation=organisation, title="Schedule missed", severity="warning")

    sign_in(page, people[Role.OPERATOR].username)
    badge = page.get_by_test_id("alert-badge")
    expect(badge).to_have_text("2")
    page.get_by_role("link", name=re.compile("^Alerts")).click()
    expect(page.locator(".alert-item")).to_have_count(2)
    screenshot(page, "06-alerts-inbox")

    page.get_by_role("button", name="Dismiss: Backup of orders failed").click()
    expect(page.get_by_text("Dismissed “Backup of orders failed”")).to_be_visible()
    expect(badge).to_have_text("1")
    expect(page.locator(".alert-item")).to_have_count(1)
    page.get_by_role("button", name="Mark read: Schedule missed").click()
    expect(badge).to_have_count(0)
    screenshot(page, "07-alerts-after-dismiss")
    assert Alert.objects.filter(dismissed_at__isnull=False).count() == 1


def _api_status(base_url: str, token: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - our own loopback server
        f"{base_url}/api/backups/cron-presets", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_an_admin_creates_a_token_sees_it_once_and_revokes_it(
    page, live_app, ui_org, sign_in, screenshot
):
    organisation, people = ui_org
    sign_in(page, people[Role.ADMIN].username)
    page.get_by_role("link", name="API tokens").click()

    page.get_by_role("button", name="Create token").click()  # no name: an error by the field
    expect(page.locator("#id_name_error_1")).to_have_text("This field is required.")
    screenshot(page, "08-tokens-form-error")

    page.get_by_label("Name").fill("CI pipeline")
    page.get_by_label("Role").select_option("operator")
    page.get_by_role("button", name="Create token").click()
    value = page.get_by_test_id("new-token").input_value()
    assert value.startswith("sbx_")
    screenshot(page, "09-token-created")
    assert _api_status(live_app, value) == 200

    page.goto("/settings/tokens/")
    expect(page.get_by_test_id("new-token")).to_have_count(0)  # shown once only
    expect(page.get_by_text(value)).to_have_count(0)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke CI pipeline").click()
    expect(page.get_by_text("Token “CI pipeline” revoked")).to_be_visible()
    expect(page.locator("#token-list")).to_contain_text("Revoked")
    screenshot(page, "10-token-revoked")
    assert ApiToken.objects.get(name="CI pipeline").revoked_at is not None
    assert _api_status(live_app, value) == 401


def test_an_admin_previews_retention_and_sees_the_delete_marks(page, ui_org, sign_in, screenshot):
    from datetime import UTC, datetime, timedelta

    from backups.models import BackupTrigger

    organisation, people = ui_org
    project = factories.ProjectFactory(organisation=organisation, name="Website", slug="website")
    environment = factories.EnvironmentFactory(project=project, name="Staging", slug="staging")
    destination = factories.DestinationFactory(organisation=organisation, name="Local disk")
    factories.ScheduleFactory(environment=environment, retain_daily=7, timezone="Europe/London")
    start = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    backups = []
    for n in range(6):
        backup = factories.BackupFactory(
            environment=environment,
            trigger=BackupTrigger.SCHEDULED,
            created_at=start - timedelta(days=n),
            size=(10 + n) * 1024 * 1024,
        )
        factories.BackupCopyFactory(backup=backup, destination=destination)
        backups.append(backup)

    sign_in(page, people[Role.ADMIN].username)
    page.goto(f"/environments/{environment.id}/schedule/")
    expect(page.locator('[data-runs="db"] li')).to_have_count(5)
    page.get_by_label("Timezone").select_option("Asia/Tokyo")
    expect(page.locator("[data-runs-timezone]")).to_have_text("(Asia/Tokyo)")
    expect(page.locator('[data-runs="db"] li').first).to_contain_text("02:00 JST")
    screenshot(page, "11-schedule-editor")
    screenshot(page, "11-schedule-editor-phone", phone=True)

    page.get_by_role("link", name="Retention preview").click()
    expect(page.locator('#retention-decisions tr[data-decision="keep"]')).to_have_count(6)
    page.get_by_label("Daily (all kinds)").fill("2")
    page.get_by_role("button", name="Preview").click()
    rows = page.locator("#retention-decisions tbody tr")
    expect(rows).to_have_count(6)
    for index, backup in enumerate(backups):
        row = page.locator(f'tr[data-backup-id="{backup.id}"]')
        expect(row).to_have_attribute("data-decision", "keep" if index < 2 else "delete")
    expect(page.locator('tr[data-decision="delete"]').first).to_contain_text("not kept by any rule")
    expect(page.get_by_test_id("retention-summary")).to_contain_text("deletes 4, frees 54.0 MB")
    screenshot(page, "12-retention-preview")
    screenshot(page, "12-retention-preview-phone", phone=True)

    page.get_by_role("link", name="Apply this policy…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Apply this retention policy?")
    screenshot(page, "13-retention-apply-confirm")
    page.get_by_role("button", name="Apply and delete 4").click()
    expect(page.get_by_text("4 backup(s) are being deleted")).to_be_visible()
    statuses = [type(b).objects.get(pk=b.pk).status for b in backups]
    assert statuses[2:] == [BackupStatus.DELETING] * 4 or all(
        s in (BackupStatus.DELETING, BackupStatus.DELETED) for s in statuses[2:]
    )


def test_an_operator_restores_a_backup_watches_the_log_and_undoes_it(
    page, ui_org, sign_in, screenshot
):
    from tests.backups.helpers import run_backup_now

    organisation, people = ui_org
    project = factories.ProjectFactory(organisation=organisation, name="Website", slug="website")
    environment = factories.EnvironmentFactory(project=project, name="Staging", slug="staging")
    path = make_sqlite_database(tenant_path(organisation, "orders.sqlite3"), rows=500)
    database = factories.DatabaseFactory(
        environment=environment, name="Orders", slug="orders", engine="sqlite", database_name=path
    )
    # The worker and this process share the artifacts through an explicit directory.
    factories.DestinationFactory(
        organisation=organisation,
        name="Shared disk",
        config={"path": str(tenant_path(organisation, "store"))},
    )
    backup = run_backup_now(environment=environment, kind="database", database=database)
    assert backup.status == BackupStatus.COMPLETED, backup.message
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM readings WHERE id > 100")  # the "accident"

    sign_in(page, people[Role.OPERATOR].username)
    page.goto(f"/backups/{backup.id}/")
    page.get_by_role("link", name="Restore…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Restore a backup")
    # Before anything starts, the page says which database the restore replaces.
    expect(page.locator("#restore-plan")).to_contain_text("the database Orders")
    page.get_by_role("button", name="Restore", exact=True).click()
    expect(page.locator("#id_confirm_error_1")).to_be_visible()
    screenshot(page, "14-restore-form-error")
    page.get_by_label("I understand").check()
    # In place: the database's name is typed, not only a box ticked.
    expect(page.locator("#name-to-type")).to_contain_text("This restore replaces Orders")
    page.get_by_label("Type the name of what is replaced").fill("Orders")
    page.get_by_role("button", name="Restore", exact=True).click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Restore into Website / Staging")
    status = page.locator("dl.facts [data-status]")
    expect(status).to_have_text("Completed", timeout=60_000)
    # Never reloaded: the bar stays, finished, and the log fills in.
    expect(page.locator(".progress")).to_have_attribute("data-final", "done")
    expect(page.locator(".timeline li").first).to_be_visible()
    expect(page.locator("#restore-plan")).to_contain_text("the database Orders")
    expect(page.locator("pre.log")).to_contain_text("replacing the database Orders (SQLite)")
    screenshot(page, "15-restore-log")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 500

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Undo this restore…").click()
    expect(page.get_by_text("Undo started")).to_be_visible()
    expect(page.locator("dl.facts [data-status]")).to_have_text("Completed", timeout=60_000)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 100
    page.get_by_role("link", name="Restores").first.click()
    expect(page.locator("#restore-list tbody tr")).to_have_count(2)
    screenshot(page, "16-restore-list")


def test_every_other_page_renders_for_an_admin(page, ui_org, sign_in, screenshot):
    organisation, people = ui_org
    project = factories.ProjectFactory(organisation=organisation, name="Website", slug="website")
    environment = factories.EnvironmentFactory(project=project, name="Staging", slug="staging")
    destination = factories.DestinationFactory(organisation=organisation, name="Local disk")
    backup = factories.BackupFactory(environment=environment, name="website-staging-1")
    factories.BackupCopyFactory(backup=backup, destination=destination)

    factories.ScheduleFactory(environment=environment, db_cron="0 2 * * *", timezone="Europe/Paris")
    factories.AlertFactory(organisation=organisation, environment=environment, title="Disk full")
    production = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    factories.BackupFactory(environment=production, status=BackupStatus.FAILED, size=None)

    sign_in(page, people[Role.ADMIN].username)
    expect(page.get_by_role("cell", name="Failed")).to_be_visible()
    screenshot(page, "02-dashboard-with-data")
    screenshot(page, "02-dashboard-with-data-phone", phone=True)
    page.get_by_role("link", name="Destinations").click()
    page.get_by_role("button", name="Test connection to Local disk").click()
    expect(page.locator(".messages")).to_contain_text("Wrote, read back and deleted")
    screenshot(page, "17-destinations")
    screenshot(page, "17-destinations-phone", phone=True)
    page.get_by_role("link", name="Add a destination").click()
    page.get_by_label("Kind").select_option("s3")
    page.get_by_label("Name").fill("Offsite")
    page.get_by_role("button", name="Create destination").click()
    expect(page.locator("#id_s3__bucket_error_1")).to_be_visible()
    screenshot(page, "18-destination-form-errors")

    page.goto(f"/backups/{backup.id}/delete/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete this backup?")
    screenshot(page, "19-backup-delete-confirm")
    response = page.goto("/backups/00000000-0000-0000-0000-000000000000/")
    assert response.status == 404
    screenshot(page, "20-not-found")


def test_the_environment_page_shows_point_in_time_recovery_health(
    page, ui_org, sign_in, screenshot
):
    from datetime import timedelta

    from django.utils import timezone

    from backups.models import WalArchiver
    from tests.pitr.conftest import recorded_history

    organisation, people = ui_org
    project = factories.ProjectFactory(organisation=organisation, name="Billing", slug="billing")
    environment = factories.EnvironmentFactory(project=project, name="Live", slug="live")
    base = recorded_history(environment, start=timezone.now() - timedelta(hours=5))
    WalArchiver.objects.create(
        database=base.database,
        last_archived_wal="000000010000000000000004",
        last_archived_at=timezone.now() - timedelta(minutes=2),
        last_failed_wal="000000010000000000000005",
        last_failed_at=timezone.now(),
        last_error="s3: connection refused",
        failed_count=2,
        consecutive_failures=2,
    )

    sign_in(page, people[Role.VIEWER].username)
    page.get_by_role("link", name="Live").click()
    card = page.get_by_role("region", name="Point-in-time recovery window")
    expect(card).to_contain_text("Recoverable from")
    expect(card.get_by_role("img", name="Recoverable windows of Orders")).to_be_visible()
    expect(card.get_by_role("alert")).to_contain_text("failed 2 times in a row")
    screenshot(page, "12-environment-pitr")
