"""A full restore is all or nothing: an environment with three databases on three real
servers (PostgreSQL, MariaDB, SQLite) and a files directory, restored from its full backup.

The swap of a member is made to fail for real: its target is marked immutable
(``chattr +i``), which even root cannot rename or link. A worker is SIGKILLed at a point the
test controls: MariaDB's RENAME TABLE waits for a metadata lock the test holds. The states
a worker killed just before or just after the SWAP phase's commit point leaves are built
from the same building blocks the worker runs.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backups.engines import ConnectionSpec
from restores import loading
from restores.artifacts import Progress, fetch_verified
from restores.models import Restore, RestoreStatus
from restores.plan import plan_restore
from restores.services import (
    restore_claim,
    restore_execute,
    restore_request,
    restore_undo,
    restores_reap_stale,
)
from restores.services.steps import load_all
from tests.backups.helpers import database_for, make_files_tree, run_backup_now, tree_fingerprint
from tests.fixtures.databases import (
    MySQLEngine,
    PostgreSQLEngine,
    fill_mariadb,
    fill_postgres,
    fill_sqlite,
    table_checksums,
    unavailable,
)
from tests.fixtures.worker import wait_for
from tests.restores.helpers import leftovers, run_restore_now

pytestmark = [pytest.mark.postgres, pytest.mark.mariadb]


class Shop:
    """The environment under test: its targets, their Strongbox rows and a full backup."""

    def __init__(self, environment, pg, maria, lite, files: Path):
        self.environment = environment
        self.specs = {"pg": pg, "maria": maria, "lite": lite}
        self.files = files
        # Slugs sort as the full backup (and so the restore) orders its members.
        self.databases = {
            "pg": database_for(environment, pg, slug="a-ledger", name="ledger"),
            "maria": database_for(environment, maria, slug="b-shop", name="shop"),
            "lite": database_for(environment, lite, slug="c-cache", name="cache"),
        }
        environment.files_path = str(files)
        environment.save()

    def fingerprint(self) -> dict:
        state = {key: table_checksums(spec) for key, spec in self.specs.items()}
        state["files"] = tree_fingerprint(self.files)
        return state

    def leftovers(self) -> list[str]:
        files = ConnectionSpec(engine="files", name=str(self.files))
        return [name for spec in [*self.specs.values(), files] for name in leftovers(spec)]

    def scribble(self) -> None:
        """Change every member after the backup."""
        with PostgreSQLEngine().connect(self.specs["pg"]) as conn:
            conn.execute("DELETE FROM customers WHERE id % 2 = 0")
            conn.execute("UPDATE measurements SET big = 0")
        conn = MySQLEngine("mariadb").connect(self.specs["maria"])
        try:
            with conn.cursor() as cur:
                cur.execute("DELETE FROM documents WHERE id % 3 = 0")
                cur.execute("UPDATE customers SET note = 'changed'")
        finally:
            conn.close()
        with contextlib.closing(sqlite3.connect(self.specs["lite"].name)) as lite, lite:
            lite.execute("DELETE FROM measurements WHERE id > 10")
        (self.files / "empty.txt").unlink()
        (self.files / "written-after-the-backup.txt").write_text("new")


@pytest.fixture
def shop(environment, destination, organisation_dir, make_postgres_database, make_mariadb_database):
    lite = ConnectionSpec(engine="sqlite", name=str(organisation_dir / "cache.sqlite3"))
    shop = Shop(
        environment,
        make_postgres_database(),
        make_mariadb_database(),
        lite,
        make_files_tree(organisation_dir / "site" / "files"),
    )
    fill_postgres(shop.specs["pg"], rows=150)
    fill_mariadb(shop.specs["maria"], rows=120)
    fill_sqlite(lite, rows=90)
    shop.original = shop.fingerprint()
    shop.backup = run_backup_now(environment=environment, kind="full")
    shop.scribble()
    shop.changed = shop.fingerprint()
    assert shop.changed != shop.original
    for key in ("pg", "maria", "lite", "files"):
        assert shop.changed[key] != shop.original[key], key
    return shop


@contextlib.contextmanager
def immutable(path: Path):
    """Mark ``path`` immutable: the kernel refuses to rename or link it, even for root."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        unavailable(f"chattr +i is not supported here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("failing", "put_back", "untouched"),
    [
        ("files", "ledger, shop, cache", ""),
        ("cache", "ledger, shop", "files"),
    ],
)
def test_a_swap_that_fails_puts_every_member_back_as_it_was(shop, failing, put_back, untouched):
    path = shop.files if failing == "files" else Path(shop.specs["lite"].name)

    with immutable(path):
        restore = run_restore_now(backup=shop.backup, target_type="same")

    assert restore.status == RestoreStatus.FAILED, restore.message
    assert restore.message.startswith(f"Swapping in {failing} failed"), restore.message
    assert "Operation not permitted" in restore.message
    assert f"Put back as they were: {put_back}." in restore.message, restore.message
    if untouched:
        assert f"Not touched: {untouched}." in restore.message
    assert "The target was left as it was." in restore.message
    assert [(p["name"], p["status"]) for p in restore.phases][-1] == ("SWAP", "ERROR")
    assert shop.fingerprint() == shop.changed
    assert shop.leftovers() == []
    # The safety backup and its undo are untouched by the failed swap.
    assert restore.safety_backup.status == "completed"


@pytest.mark.django_db
def test_a_full_restore_that_succeeds_drops_every_kept_copy_and_undo_brings_the_change_back(
    shop,
):
    restore = run_restore_now(backup=shop.backup, target_type="same")

    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert shop.fingerprint() == shop.original
    assert shop.leftovers() == []

    undo = restore_undo(restore=restore)
    undone = restore_execute(restore=restore_claim(restore_id=undo.id))

    assert undone.status == RestoreStatus.COMPLETED, undone.message
    assert shop.fingerprint() == shop.changed
    assert shop.leftovers() == []


def _waiting_rename(spec: ConnectionSpec):
    """The id of a connection whose RENAME TABLE on ``spec`` waits for a metadata lock."""
    conn = MySQLEngine("mariadb").connect(spec, database="")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id FROM information_schema.processlist WHERE info LIKE 'RENAME TABLE%%'"
                " AND info LIKE %s AND state LIKE '%%metadata lock%%'",
                (f"%`{spec.name}`.%",),
            )
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


def _connection_alive(spec: ConnectionSpec, thread_id: int) -> bool:
    conn = MySQLEngine("mariadb").connect(spec, database="")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.processlist WHERE id = %s", (thread_id,))
            return cur.fetchone() is not None
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_between_two_member_swaps_is_reaped_and_every_member_put_back(
    shop, start_worker, settings
):
    maria = shop.specs["maria"]
    # An open transaction that read a table holds its metadata lock: the worker's RENAME
    # TABLE (the second member's swap, after the PostgreSQL one) waits for it.
    blocker = MySQLEngine("mariadb").connect(maria)
    try:
        with blocker.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("SELECT COUNT(*) FROM customers")
        worker = start_worker()
        restore = restore_request(backup=shop.backup, target_type="same", take_safety_backup=False)
        thread_id = wait_for(
            lambda: _waiting_rename(maria),
            timeout=120,
            message=f"the MariaDB swap to wait; worker log:\n{worker.output()[-4000:]}",
        )
        # The PostgreSQL member is swapped in by now, its previous database kept aside.
        assert table_checksums(shop.specs["pg"]) == shop.original["pg"]
        assert len(leftovers(shop.specs["pg"])) == 1

        worker.kill()
        worker.stop()
        # The dead worker's statement still waits on the server; let it run to its end
        # (its tables move), as it would once the lock goes: the reaper starts from there.
        blocker.rollback()
        wait_for(
            lambda: not _connection_alive(maria, thread_id),
            timeout=30,
            message="the dead worker's MariaDB connection to end",
        )
    finally:
        blocker.close()
    assert Restore.objects.get(pk=restore.pk).status == RestoreStatus.IN_PROGRESS
    # Two members are swapped in, two are not: the environment is inconsistent until reaped.
    assert table_checksums(shop.specs["pg"]) == shop.original["pg"]
    assert table_checksums(maria) == shop.original["maria"]
    assert table_checksums(shop.specs["lite"]) == shop.changed["lite"]

    later = timezone.now() + timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS + 5)
    assert [r.pk for r in restores_reap_stale(now=later)] == [restore.pk]

    restore.refresh_from_db()
    assert restore.status == RestoreStatus.FAILED
    assert "It was swapping the restored data in." in restore.message, restore.message
    assert "Put back as they were: ledger, shop" in restore.message, restore.message
    assert "The target is as it was before the restore." in restore.message
    assert shop.fingerprint() == shop.changed
    assert shop.leftovers() == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_swap_waiting_on_a_lock_longer_than_the_heartbeat_timeout_is_not_reaped(
    shop, start_worker, settings
):
    settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS = 4  # the worker inherits it
    maria = shop.specs["maria"]
    blocker = MySQLEngine("mariadb").connect(maria)
    try:
        with blocker.cursor() as cur:
            cur.execute("START TRANSACTION")
            cur.execute("SELECT COUNT(*) FROM customers")
        worker = start_worker()
        restore = restore_request(backup=shop.backup, target_type="same", take_safety_backup=False)
        wait_for(
            lambda: _waiting_rename(maria),
            timeout=120,
            message=f"the MariaDB swap to wait; worker log:\n{worker.output()[-4000:]}",
        )
        waiting_since = timezone.now()

        def waited_past_the_timeout_with_a_fresh_heartbeat():
            row = Restore.objects.get(pk=restore.pk)
            fresh = timezone.now() - row.heartbeat_at < timedelta(seconds=2)
            waited = timezone.now() - waiting_since > timedelta(seconds=6)
            return waited and fresh and _waiting_rename(maria)

        wait_for(
            waited_past_the_timeout_with_a_fresh_heartbeat,
            timeout=60,
            message=f"the swap to wait past the timeout; worker log:\n{worker.output()[-4000:]}",
        )
        assert restores_reap_stale() == []
        blocker.rollback()
        wait_for(
            lambda: not Restore.objects.get(pk=restore.pk).is_active,
            timeout=120,
            message=f"the restore to finish; worker log:\n{worker.output()[-4000:]}",
        )
    finally:
        blocker.close()

    restore.refresh_from_db()
    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert shop.fingerprint() == shop.original
    assert shop.leftovers() == []


def _die_mid_swap(shop, *, swapped: int, committed: bool, settings) -> Restore:
    """Leave what a worker killed in the SWAP phase leaves: the first ``swapped`` members
    swapped in with their previous contents kept, the rest loaded into scratch copies, and
    (``committed``) the SWAP phase recorded as done; its heartbeat gone stale."""
    restore = restore_request(
        backup=shop.backup, target_type="same", take_safety_backup=False, enqueue=False
    )
    restore = restore_claim(restore_id=restore.id)
    tag = restore.id.hex[:8]
    members = plan_restore(shop.backup, shop.environment)
    fetched, problems = fetch_verified(shop.backup, Progress(None))
    assert fetched is not None, problems
    try:
        load_all(shop.backup, fetched, members, tag=tag, purpose="restore", progress=Progress(None))
    finally:
        fetched.cleanup()
    for member in members[:swapped]:
        loading.swap_keeping(member.target, member.scratch, tag=tag)
    stale = timezone.now() - timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS + 5)
    swap = {"name": "SWAP", "status": "SUCCESS" if committed else "RUNNING"}
    Restore.objects.filter(pk=restore.pk).update(phase="SWAP", phases=[swap], heartbeat_at=stale)
    return restore


@pytest.mark.django_db
def test_the_reaper_puts_back_a_swap_that_died_before_every_member_was_in(shop, settings):
    restore = _die_mid_swap(shop, swapped=3, committed=False, settings=settings)

    assert [r.pk for r in restores_reap_stale()] == [restore.pk]

    restore.refresh_from_db()
    assert restore.status == RestoreStatus.FAILED
    assert "Put back as they were: ledger, shop, cache." in restore.message, restore.message
    assert shop.fingerprint() == shop.changed
    assert shop.leftovers() == []


@pytest.mark.django_db
def test_the_reaper_completes_a_swap_that_died_after_every_member_was_in(shop, settings):
    restore = _die_mid_swap(shop, swapped=4, committed=True, settings=settings)

    assert [r.pk for r in restores_reap_stale()] == [restore.pk]

    restore.refresh_from_db()
    assert restore.status == RestoreStatus.COMPLETED, restore.message
    assert "swapped every member in" in restore.message
    assert shop.fingerprint() == shop.original
    assert shop.leftovers() == []
