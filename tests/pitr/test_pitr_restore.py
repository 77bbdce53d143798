"""POST /api/backups/{id}/restore with pitrTimestamp, end to end: a real PostgreSQL cluster
archives its WAL through Strongbox, a base backup anchors the window, and the restore
recovers a private copy to T, dumps the database from it and swaps it into the target."""

from __future__ import annotations

import time
from datetime import UTC
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client

from backups.models import BackupStatus, WalSegment
from backups.services import backup_claim
from organizations.models import Role
from pitr.base import base_backup_execute, base_backup_request
from restores.models import Restore, RestoreStatus
from restores.services import restore_claim, restore_execute, restore_request
from tests import factories
from tests.fixtures.worker import wait_for
from tests.pitr.conftest import archive_command, child_env, switch_and_wait
from tests.restores.helpers import leftovers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def recovery_env(monkeypatch):
    """The recovered copy's restore_command (fetch_wal) inherits the worker's environment;
    here that must point it at this test run's database."""
    for name, value in {
        **child_env(),
        "STRONGBOX_TMP_DIR": str(settings.STRONGBOX_TMP_DIR),
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def shop(transactional_db, environment, archive_dir, clusters, pg_launcher, recovery_env):
    return make_shop(environment, archive_dir, clusters)


def make_shop(environment, archive_dir, clusters, *, debian_layout: bool = False):
    """A cluster archiving into Strongbox, with a database `shop` holding orders 1-100 and a
    base backup of it; returns (cluster, database, base backup)."""
    factories.DestinationFactory(
        organisation=environment.project.organisation,
        name="WAL disk",
        config={"path": str(archive_dir)},
        is_default=True,
    )
    factories.ScheduleFactory(environment=environment, wal_enabled=True, wal_retention_days=7)
    cluster = clusters("primary")
    database = factories.DatabaseFactory(
        environment=environment,
        name="Shop",
        slug="shop",
        engine="postgresql",
        host="127.0.0.1",
        port=cluster.port,
        username="postgres",
        database_name="shop",
    )
    cluster.init(archive=archive_command(database.id))
    if debian_layout:
        cluster.move_configuration_out()
    cluster.start()
    cluster.execute("CREATE DATABASE shop")
    run(cluster, "CREATE TABLE orders (id integer PRIMARY KEY, label text)")
    insert(cluster, 1, 100)
    backup = base_backup_request(database=database, enqueue=False)
    base = base_backup_execute(backup=backup_claim(backup_id=backup.id))
    assert base.status == BackupStatus.COMPLETED, base.message
    return cluster, database, base


def run(cluster, query: str, *params):
    with psycopg.connect(
        host="127.0.0.1", port=cluster.port, user="postgres", dbname="shop", autocommit=True
    ) as conn:
        cursor = conn.execute(query, params or None)
        return cursor.fetchall() if cursor.description else None


def insert(cluster, first: int, last: int) -> None:
    run(
        cluster,
        "INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(%s::int, %s::int) g",
        first,
        last,
    )


def history_with_a_mistake(cluster, database):
    """Orders 101-200, then T, then the mistake (orders up to 150 deleted) and 201-300;
    returns T once every segment up to now is archived."""
    insert(cluster, 101, 200)
    time.sleep(1.1)
    target = run(cluster, "SELECT clock_timestamp()")[0][0]
    time.sleep(1.1)
    run(cluster, "DELETE FROM orders WHERE id <= 150")
    insert(cluster, 201, 300)
    switch_and_wait(cluster, database)
    return target


def rehearsal(project, spec):
    """Another environment whose `shop` database is ``spec`` (on the shared test server)."""
    other = factories.EnvironmentFactory(project=project, name="Rehearsal", slug="rehearsal")
    factories.DatabaseFactory(
        environment=other,
        name="Shop copy",
        slug="shop",
        engine="postgresql",
        host=spec.host,
        port=spec.port,
        username=spec.user,
        database_name=spec.name,
    )
    return other, spec


def execute(restore_id) -> Restore:
    claimed = restore_claim(restore_id=restore_id)
    assert claimed is not None
    return restore_execute(restore=claimed)


def recovered_dirs() -> list[Path]:
    return sorted(Path(settings.STRONGBOX_TMP_DIR).glob("pitr-*"))


def test_the_api_restores_a_database_to_a_point_in_time_in_place_and_elsewhere(
    client_for, organisation, operator, project, shop, make_postgres_database, start_worker
):
    cluster, database, base = shop
    target = history_with_a_mistake(cluster, database)
    client = client_for(organisation, Role.OPERATOR)

    # Into another environment's database on another server (the shared test server).
    other, spec = rehearsal(project, make_postgres_database())
    # This one runs on a real django-q2 worker, as in production: the recovered copy's
    # restore_command inherits the worker's environment.
    worker = start_worker()
    body = {"targetType": "other", "targetEnvironmentId": str(other.id), "pitrTimestamp": target}
    plan = client.post(f"/api/backups/{base.id}/restore-plan", body, format="json").json()
    response = client.post(f"/api/backups/{base.id}/restore", body, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["pitrTimestamp"] is not None
    # The same mapping as any restore: the plan named the database the restore replaces.
    assert response.json()["members"] == plan["members"]
    assert [m["target"]["databaseId"] for m in plan["members"]] == [str(other.databases.get().id)]
    restore_id = response.json()["id"]
    wait_for(
        lambda: not Restore.objects.get(pk=restore_id).is_active,
        timeout=180,
        message=f"the restore to finish; worker log:\n{worker.output()[-4000:]}",
    )
    worker.stop()  # the rest runs in this process
    elsewhere = Restore.objects.get(pk=restore_id)
    assert elsewhere.status == RestoreStatus.COMPLETED, elsewhere.message
    with psycopg.connect(host=spec.host, port=spec.port, user=spec.user, dbname=spec.name) as conn:
        rows = conn.execute("SELECT min(id), max(id), count(*) FROM orders").fetchone()
    assert rows == (1, 200, 200)
    assert [p["name"] for p in elsewhere.phases] == [
        "VERIFY",
        "SAFETY_BACKUP",
        "RECOVER",
        "RESTORE",
        "CHECK",
        "SWAP",
    ]
    recover = elsewhere.phases[2]
    assert recover["base_backup"] == base.name
    assert "recovery stopping before commit" in recover["stopped_at"]
    assert elsewhere.safety_backup is None  # the new database was empty
    assert f"from base backup {base.name}" in elsewhere.message
    assert leftovers(spec) == []
    assert recovered_dirs() == []

    # In place, from the restore form: the mistake is undone, and what it replaced is kept
    # in a safety backup.
    page = Client()
    page.force_login(operator)
    form = page.get(f"/backups/{base.id}/restore/")
    assert form.status_code == 200
    assert "Recover to a point in time" in form.content.decode()
    response = page.post(
        f"/backups/{base.id}/restore/",
        {
            "target_environment": str(database.environment_id),
            "take_safety_backup": "on",
            "pitr_timestamp": target.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "confirm": "on",
            "confirm_name": database.name,  # in place: typed, as the form asks
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    restore_id = response["Location"].rstrip("/").rsplit("/", 1)[-1]
    in_place = execute(restore_id)
    assert in_place.status == RestoreStatus.COMPLETED, in_place.message
    assert run(cluster, "SELECT min(id), max(id), count(*) FROM orders")[0] == (1, 200, 200)
    assert in_place.safety_backup.status == BackupStatus.COMPLETED
    assert in_place.safety_backup.row_counts == {"public.orders": 150}
    assert recovered_dirs() == []
    names = cluster.execute("SELECT datname FROM pg_database WHERE datname LIKE 'shop%'")
    assert names == [("shop",)]

    # Undo brings back what the point-in-time restore replaced.
    response = client.post(
        f"/api/backups/{in_place.safety_backup_id}/restore", {"targetType": "same"}, format="json"
    )
    assert response.status_code == 202, response.content
    undone = execute(response.json()["id"])
    assert undone.status == RestoreStatus.COMPLETED, undone.message
    assert run(cluster, "SELECT min(id), max(id), count(*) FROM orders")[0] == (151, 300, 150)

    # Outside the window: refused with the window, nothing queued.
    response = client.post(
        f"/api/backups/{base.id}/restore",
        {"targetType": "same", "pitrTimestamp": "2020-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 422
    assert "outside the point-in-time recovery coverage" in response.json()["error"]["message"]


def test_a_recovery_that_cannot_reach_the_target_leaves_the_target_untouched(shop, archive_dir):
    cluster, database, base = shop
    target = history_with_a_mistake(cluster, database)
    # The WAL after the base backup is damaged in the archive, same size (so the listing
    # the request makes still passes it): recovery cannot get to T. (A missing file is
    # refused up front: tests/pitr/test_verify.py.)
    for segment in WalSegment.objects.filter(database=database, kind="segment").exclude(
        base_backup=None
    ):
        path = archive_dir / segment.key
        path.write_bytes(b"\0" * path.stat().st_size)
    before = run(cluster, "SELECT count(*) FROM orders")[0][0]

    with pytest.raises(CommandError, match="did not complete"):
        call_command("restore_backup", str(base.id), "--to", target.isoformat())
    failed = Restore.objects.get(backup=base)

    assert failed.status == RestoreStatus.FAILED
    assert failed.message.startswith("Recovering Shop to ")
    assert "the target was left as it was" in failed.message
    assert [p["status"] for p in failed.phases][-1] == "ERROR"
    assert failed.phases[-1]["name"] == "RECOVER"
    assert run(cluster, "SELECT count(*) FROM orders")[0][0] == before
    assert recovered_dirs() == []
    assert cluster.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'shop%'") == [(1,)]


def test_a_cluster_configured_outside_its_data_directory_is_recovered_too(
    transactional_db,
    environment,
    project,
    archive_dir,
    clusters,
    pg_launcher,
    recovery_env,
    make_postgres_database,
):
    cluster, database, base = make_shop(environment, archive_dir, clusters, debian_layout=True)
    assert not (cluster.datadir / "postgresql.conf").exists()
    target = history_with_a_mistake(cluster, database)
    other, spec = rehearsal(project, make_postgres_database())
    restore = restore_request(
        backup=base,
        target_type="other",
        target_environment=other,
        pitr_timestamp=target,
        enqueue=False,
    )
    done = execute(restore.id)
    assert done.status == RestoreStatus.COMPLETED, done.message
    with psycopg.connect(host=spec.host, port=spec.port, user=spec.user, dbname=spec.name) as conn:
        assert conn.execute("SELECT min(id), max(id), count(*) FROM orders").fetchone() == (
            1,
            200,
            200,
        )
    assert recovered_dirs() == []
