"""The encryption settings page in a real browser: an admin sets the organisation's age
recipient, the live worker's next backup is encrypted to it, and the backup page says so."""

from __future__ import annotations

import sqlite3

import pytest
from playwright.sync_api import expect

from backups.age_format import generate_identity, recipient_fingerprint
from backups.models import AgeKeys, Backup, BackupStatus, Encryption
from organizations.models import Role
from tests import factories
from tests.fixtures.tenants import tenant_path

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_an_admin_sets_an_age_recipient_and_the_next_backup_is_encrypted_to_it(
    page, ui_org, sign_in, screenshot
):
    organisation, people = ui_org
    project = factories.ProjectFactory(organisation=organisation, name="Website", slug="website")
    environment = factories.EnvironmentFactory(project=project, name="Staging", slug="staging")
    path = tenant_path(organisation, "orders.sqlite3")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)")
        conn.executemany("INSERT INTO orders (note) VALUES (?)", [(f"n{i}",) for i in range(500)])
    factories.DatabaseFactory(
        environment=environment,
        name="Orders",
        slug="orders",
        engine="sqlite",
        database_name=str(path),
    )
    factories.DestinationFactory(organisation=organisation, name="Local disk")
    identity = generate_identity()

    sign_in(page, people[Role.ADMIN].username)
    page.get_by_role("link", name="Encryption").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Encryption")
    page.get_by_role("textbox", name="Recipients").fill("age1thisisnotakey")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("'age1thisisnotakey' is not an age X25519 recipient")).to_be_visible()
    screenshot(page, "30-encryption-bad-key")

    page.get_by_role("textbox", name="Recipients").fill(identity.recipient)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Encryption settings saved")).to_be_visible()
    expect(page.get_by_test_id("new-encryption")).to_have_text("age")
    screenshot(page, "31-encryption-saved")
    assert AgeKeys.objects.get(organisation=organisation).recipients == [identity.recipient]

    page.get_by_role("link", name="Dashboard").click()
    page.get_by_role("link", name="Staging").click()
    page.get_by_role("button", name="Back up now").click()
    expect(page.get_by_text("Backup started")).to_be_visible()
    backup = Backup.objects.get(environment=environment)
    row = page.locator(f'tr[data-backup-id="{backup.id}"]')
    expect(row.locator(f'[data-status-for="{backup.id}"]')).to_have_text(
        "Completed", timeout=60_000
    )
    backup.refresh_from_db()
    assert backup.status == BackupStatus.COMPLETED, backup.message
    assert backup.encryption == Encryption.AGE
    assert backup.key_id == "age:" + recipient_fingerprint(identity.recipient)

    row.get_by_role("link", name=backup.name).click()
    expect(page.get_by_text("age (X25519 recipients)")).to_be_visible()
    expect(page.get_by_test_id("key-id")).to_have_text(backup.key_id)
    screenshot(page, "32-backup-detail-age")

    page.goto("/settings/encryption/")
    page.context.clear_cookies()
    sign_in(page, people[Role.VIEWER].username)
    expect(page.get_by_role("link", name="Encryption")).to_have_count(0)
