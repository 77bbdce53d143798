"""The backup and restore pages follow a real run live, in Chromium: the phase list fills
in as the run goes, sizes, copies and actions appear when it ends, a failure shows its
error, and the page never reloads.

What holds a run at a known point is PostgreSQL itself: the test keeps an ACCESS
EXCLUSIVE lock on a table of the database being dumped, so ``pg_dump`` waits for it with
its phases running (a backup's DUMP, COMPRESS and UPLOAD; a restore's SAFETY_BACKUP after
its VERIFY). The test looks at the page while it waits, then lets go (or, for the failure,
ends the waiting ``pg_dump``'s session).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from backups.engines.postgresql import PostgreSQLEngine
from backups.models import Backup, BackupStatus
from organizations.models import Role
from restores.models import Restore, RestoreStatus
from tests import factories
from tests.backups.helpers import restore_database_artifact, run_backup_now
from tests.fixtures.databases import fill_postgres, postgres_server, table_checksums
from tests.fixtures.tenants import tenant_path
from tests.fixtures.worker import wait_for
from tests.ui.test_accessibility import RUN_AXE, axe_source  # noqa: F401 - a fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Every distinct phase list the page shows, in order, and the main frame's navigations.
WATCH = """() => {
  window.liveMarker = "set before the run ended";
  window.phaseLog = [];
  const list = document.querySelector("[data-phase-list]");
  const snap = () => {
    const states = [...list.querySelectorAll("[data-phase]")].map(
      (li) => li.dataset.phase + ":" + li.dataset.state).join(" ");
    if (window.phaseLog[window.phaseLog.length - 1] !== states) { window.phaseLog.push(states); }
  };
  snap();
  new MutationObserver(snap).observe(list, {childList: true, subtree: true, attributes: true});
}"""


class TableLock:
    """An ACCESS EXCLUSIVE lock on one table, held by a session of its own until released."""

    def __init__(self, spec, table: str = "customers"):
        self.spec = spec
        self.conn = PostgreSQLEngine().connect(spec)
        self.conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")  # opens a transaction

    def waiters(self) -> list[int]:
        """The sessions of the database waiting for a lock (a blocked pg_dump)."""
        with PostgreSQLEngine().connect(postgres_server("postgres")) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
                (self.spec.name,),
            ).fetchall()
        return [pid for (pid,) in rows]

    def end_waiters(self) -> None:
        with PostgreSQLEngine().connect(postgres_server("postgres")) as conn:
            for pid in self.waiters():
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


@pytest.fixture
def table_lock():
    locks: list[TableLock] = []

    def take(spec) -> TableLock:
        lock = TableLock(spec)
        locks.append(lock)
        return lock

    yield take
    for lock in locks:
        lock.release()


@pytest.fixture
def server_artifacts(settings, server_env):
    """This process reads the artifacts where the live server's worker wrote them."""
    settings.STRONGBOX_LOCAL_DESTINATION_ROOT = server_env["STRONGBOX_LOCAL_DESTINATION_ROOT"]


@pytest.fixture
def orders(ui_org, make_postgres_database):
    """A PostgreSQL database "Orders" with sample rows, and a destination to back it up to."""
    organisation, people = ui_org
    project = factories.ProjectFactory(organisation=organisation, name="Shop", slug="shop")
    environment = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    spec = make_postgres_database()
    fill_postgres(spec, rows=300)
    database = factories.DatabaseFactory(
        environment=environment,
        name="Orders",
        slug="orders",
        engine="postgresql",
        host=spec.host,
        port=spec.port,
        username=spec.user,
        password=spec.password,
        database_name=spec.name,
    )
    # The worker and this process share the artifacts through an explicit directory.
    factories.DestinationFactory(
        organisation=organisation,
        name="Shared disk",
        config={"path": str(tenant_path(organisation, f"store-{spec.name}"))},
    )
    return spec, database, people


def phase_states(page) -> dict[str, str]:
    items = page.locator("[data-phase-list] [data-phase]")
    return {
        items.nth(i).get_attribute("data-phase"): items.nth(i).get_attribute("data-state")
        for i in range(items.count())
    }


def running_phases(log_entry: str) -> list[str]:
    return [item.split(":")[0] for item in log_entry.split() if item.endswith(":running")]


def assert_never_reloaded(page, navigations: list) -> None:
    assert navigations == []
    assert page.evaluate("() => window.liveMarker") == "set before the run ended"
    assert page.evaluate("() => performance.getEntriesByType('navigation')[0].type") == "navigate"


def watch(page) -> list:
    """Start recording the phase list and the main frame's navigations from now on."""
    page.evaluate(WATCH)
    navigations: list = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and navigations.append(frame))
    return navigations


def no_serious_violation(page, source: str) -> None:
    """What the page became live passes axe-core as the rendered pages do."""
    page.add_script_tag(content=source)
    assert page.evaluate(RUN_AXE) == []


def test_a_backup_started_from_the_database_page_fills_in_its_phases_and_sizes_live(
    page,
    orders,
    sign_in,
    table_lock,
    server_artifacts,
    make_postgres_database,
    screenshot,
    axe_source,  # noqa: F811 - the fixture imported above
):
    spec, database, people = orders
    lock = table_lock(spec)

    sign_in(page, people[Role.ADMIN].username)
    page.goto(f"/databases/{database.id}/")
    page.get_by_role("button", name="Back up now").click()
    expect(page.get_by_text("Backup started")).to_be_visible()
    backup = Backup.objects.get(database=database)
    page.get_by_role("link", name=backup.name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(backup.name)
    navigations = watch(page)

    # pg_dump waits for the lock: the dump and the streams behind it are running.
    phases = page.locator("[data-phase-list]")
    expect(phases.locator('[data-phase="DUMP"]')).to_have_attribute("data-state", "running")
    expect(phases.locator('[data-phase="VERIFY"]')).to_have_attribute("data-state", "pending")
    expect(phases.locator('[data-phase="DUMP"] .status')).to_have_text(re.compile("Running"))
    wait_for(lock.waiters, timeout=30, message="pg_dump waiting for the table lock")
    assert phase_states(page) == {
        "DUMP": "running",
        "COMPRESS": "running",
        "UPLOAD": "running",
        "VERIFY": "pending",
    }
    expect(page.get_by_test_id("size")).to_have_text("—")
    expect(page.get_by_test_id("restore")).to_be_hidden()
    expect(page.get_by_test_id("download")).to_be_hidden()
    screenshot(page, "live-01-backup-running")

    lock.release()
    status = page.locator(f'dl.facts [data-status-for="{backup.id}"]')
    expect(status).to_have_text("Completed", timeout=60_000)
    backup.refresh_from_db()
    assert backup.status == BackupStatus.COMPLETED, backup.message

    expect(phases.locator("[data-phase]")).to_have_count(4)
    assert set(phase_states(page).values()) == {"done"}
    expect(page.locator("[data-phase-announcer]")).to_contain_text(re.compile(r"done in \d"))
    expect(phases.locator('[data-phase="VERIFY"] .phase-times')).to_contain_text(" s")
    expect(page.get_by_test_id("checksum")).to_have_text(backup.checksum_sha256)
    expect(page.get_by_test_id("size")).to_contain_text(f"({backup.size} bytes, zstd")
    expect(page.locator("[data-live=duration]")).to_have_text(re.compile(r"^\d+\.\d s$"))
    expect(page.locator("[data-live=copies]")).to_contain_text("Shared disk")
    expect(page.locator("[data-live=copies] .status")).to_have_text("Stored")
    expect(page.get_by_test_id("restore")).to_be_visible()
    expect(page.get_by_test_id("download")).to_be_visible()
    expect(page.locator("[data-live=download-format]")).to_have_text("(still zstd-compressed)")
    expect(page.get_by_role("link", name="Delete…")).to_be_visible()
    screenshot(page, "live-02-backup-completed")
    screenshot(page, "live-02-backup-completed-phone", phone=True)

    log = page.evaluate("() => window.phaseLog")
    before_the_end = [entry for entry in log if "pending" in entry or "running" in entry]
    assert max(len(running_phases(entry)) for entry in before_the_end) >= 2, log
    assert log[-1] == "DUMP:done COMPRESS:done UPLOAD:done VERIFY:done", log
    assert_never_reloaded(page, navigations)
    no_serious_violation(page, axe_source)

    restored = make_postgres_database()
    restore_database_artifact(backup, restored)
    assert table_checksums(restored) == table_checksums(spec)


def test_a_restore_fills_in_its_phases_live_and_offers_undo_without_a_reload(
    page, orders, sign_in, table_lock, server_artifacts, screenshot
):
    spec, database, people = orders
    backup = run_backup_now(environment=database.environment, kind="database", database=database)
    assert backup.status == BackupStatus.COMPLETED, backup.message
    expected = table_checksums(spec)
    with PostgreSQLEngine().connect(spec) as conn:
        conn.execute("DELETE FROM customers WHERE id > 10")  # the "accident"

    sign_in(page, people[Role.OPERATOR].username)
    page.goto(f"/backups/{backup.id}/")
    page.get_by_role("link", name="Restore…").click()
    page.get_by_label("I understand").check()
    page.get_by_label("Type the name of what is replaced").fill("Orders")
    # The safety backup of the target will wait for this lock.
    lock = table_lock(spec)
    page.get_by_role("button", name="Restore", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Restore into Shop / Production")
    restore = Restore.objects.get(backup=backup)
    navigations = watch(page)

    phases = page.locator("[data-phase-list]")
    expect(phases.locator('[data-phase="SAFETY_BACKUP"]')).to_have_attribute(
        "data-state", "running", timeout=30_000
    )
    wait_for(lock.waiters, timeout=30, message="the safety backup waiting for the table lock")
    assert phase_states(page) == {
        "VERIFY": "done",
        "SAFETY_BACKUP": "running",
        "RESTORE": "pending",
        "CHECK": "pending",
        "SWAP": "pending",
    }
    expect(page.get_by_role("button", name="Undo this restore…")).to_be_hidden()
    expect(page.get_by_test_id("bytes-read")).to_have_text("—")
    screenshot(page, "live-03-restore-running")

    lock.release()
    status = page.locator(f'dl.facts [data-status-for="{restore.id}"]')
    expect(status).to_have_text("Completed", timeout=90_000)
    restore.refresh_from_db()
    assert restore.status == RestoreStatus.COMPLETED, restore.message

    assert set(phase_states(page).values()) == {"done"}
    expect(phases.locator("[data-phase]")).to_have_count(5)
    expect(page.get_by_test_id("bytes-read")).not_to_have_text("—")
    expect(page.locator("[data-live=duration]")).to_have_text(re.compile(r"^\d+\.\d s$"))
    expect(page.locator("[data-live=safety-backup] a")).to_have_text("Completed")
    expect(page.get_by_test_id("message")).to_contain_text("replacing the database Orders")
    expect(page.get_by_role("button", name="Undo this restore…")).to_be_visible()
    screenshot(page, "live-04-restore-completed")
    screenshot(page, "live-04-restore-completed-phone", phone=True)

    log = page.evaluate("() => window.phaseLog")
    assert any("SAFETY_BACKUP:running" in entry for entry in log), log
    assert log[-1].split() == [
        f"{name}:done" for name in ("VERIFY", "SAFETY_BACKUP", "RESTORE", "CHECK", "SWAP")
    ]
    assert_never_reloaded(page, navigations)
    assert table_checksums(spec) == expected


def test_a_failing_backup_shows_failed_and_its_error_live(
    page,
    orders,
    sign_in,
    table_lock,
    screenshot,
    axe_source,  # noqa: F811 - the fixture imported above
):
    spec, database, people = orders
    lock = table_lock(spec)

    sign_in(page, people[Role.OPERATOR].username)
    page.goto(f"/databases/{database.id}/")
    page.get_by_role("button", name="Back up now").click()
    expect(page.get_by_text("Backup started")).to_be_visible()
    backup = Backup.objects.get(database=database)
    page.get_by_role("link", name=backup.name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(backup.name)
    navigations = watch(page)
    phases = page.locator("[data-phase-list]")
    expect(phases.locator('[data-phase="DUMP"]')).to_have_attribute("data-state", "running")
    expect(page.get_by_test_id("message")).to_be_hidden()

    # The waiting pg_dump loses its session: the dump fails.
    wait_for(lock.waiters, timeout=30, message="pg_dump waiting for the table lock")
    lock.end_waiters()
    status = page.locator(f'dl.facts [data-status-for="{backup.id}"]')
    expect(status).to_have_text("Failed", timeout=60_000)
    backup.refresh_from_db()
    assert backup.status == BackupStatus.FAILED

    expect(phases.locator('[data-phase="DUMP"]')).to_have_attribute("data-state", "failed")
    expect(phases.locator('[data-phase="DUMP"] .status')).to_have_text(re.compile("Failed"))
    expect(phases.locator('[data-phase="VERIFY"]')).to_have_count(0)  # it never ran
    message = page.get_by_test_id("message")
    expect(message).to_be_visible()
    expect(message).to_have_text(backup.message)
    expect(page.locator("[data-live-block=message]")).to_have_attribute("role", "alert")
    expect(page.locator("[data-phase-announcer]")).to_contain_text("Dump failed")
    expect(page.locator("[data-live=copies] .status")).to_have_text("Failed")
    expect(page.get_by_test_id("restore")).to_be_hidden()
    expect(page.get_by_role("link", name="Delete…")).to_be_visible()
    expect(page.get_by_role("button", name="Abort…")).to_be_hidden()
    screenshot(page, "live-05-backup-failed")
    assert_never_reloaded(page, navigations)
    no_serious_violation(page, axe_source)
