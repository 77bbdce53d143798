"""The backup page shows an S3 Object Lock, in a real browser against a live server."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from backups.models import BackupStatus
from organizations.models import Role
from organizations.services import host_policy_set
from tests import factories
from tests.backups.helpers import database_for, run_backup_now
from tests.fixtures.databases import fill_sqlite
from tests.fixtures.s3 import s3_destination_config

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.s3]


def test_the_backup_page_shows_the_lock_and_a_delete_names_its_date(
    page, ui_org, sign_in, screenshot, s3_server, make_sqlite_database
):
    organisation, people = ui_org
    project = factories.ProjectFactory(organisation=organisation, name="Website", slug="website")
    environment = factories.EnvironmentFactory(project=project, name="Staging", slug="staging")
    spec = make_sqlite_database()
    fill_sqlite(spec, rows=100)
    database = database_for(environment, spec, name="Orders", slug="orders")
    bucket = f"sbx-lock-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    host_policy_set(organisation=organisation, allowed_hosts=["127.0.0.0/8"])
    config, secrets = s3_destination_config(s3_server, bucket)
    vault = factories.DestinationFactory(
        organisation=organisation,
        name="Vault",
        kind="s3",
        config={**config, "object_lock_mode": "compliance", "object_lock_min_days": "3"},
        secrets=secrets,
    )
    backup = run_backup_now(
        environment=environment, kind="database", database=database, destination_ids=[vault.id]
    )
    assert backup.status == BackupStatus.COMPLETED, backup.message
    until = backup.copies.get().locked_until
    assert until is not None

    sign_in(page, people[Role.OPERATOR].username)
    page.goto(f"/backups/{backup.id}/")
    locked = page.get_by_test_id("locked-until")
    expect(locked).to_contain_text(f"{until:%Y}")
    expect(locked.locator("time")).to_have_attribute("datetime", until.isoformat())
    expect(page.locator("#copies-title ~ .table-wrap")).to_contain_text("locked until")
    screenshot(page, "30-backup-locked")

    page.goto(f"/backups/{backup.id}/delete/")
    page.get_by_role("button", name="Delete backup").click()
    expect(page.locator(".messages")).to_contain_text(
        f"locked until {until.isoformat(timespec='seconds')}"
    )
