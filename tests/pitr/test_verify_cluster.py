"""On a real PostgreSQL 15 cluster archiving into Strongbox through the wrapper script
``manage.py pitr_setup`` writes: a base backup on demand (the API's type ``base``) opens a
window at once; a segment deleted from the destination is a gap within one housekeeping
cycle and the window shrinks; a restore into the gap is refused before any safety backup;
and neither a base nor a logical backup makes the server log a warning."""

from __future__ import annotations

import stat
import time

import pytest
from django.core.management import call_command

from alerts.models import Alert
from backups.models import Backup, BackupStatus, BackupTrigger, WalSegment
from backups.services import backup_claim, backup_execute
from organizations.models import Role
from pitr.archive import gap_key
from pitr.coverage import pitr_coverage
from pitr.tasks import run_pitr_housekeeping
from restores.models import Restore
from tests import factories
from tests.pitr.conftest import switch_and_wait

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]


@pytest.fixture
def shop(transactional_db, environment, archive_dir, clusters, pg_launcher, tmp_path):
    destination = factories.DestinationFactory(
        organisation=environment.project.organisation,
        name="WAL disk",
        config={"path": str(archive_dir)},
        is_default=True,
    )
    schedule = factories.ScheduleFactory(
        environment=environment, full_cron="0 2 * * *", wal_enabled=True, wal_retention_days=7
    )
    schedule.destinations.set([destination])
    cluster = clusters("primary")
    database = factories.DatabaseFactory(
        environment=environment,
        name="Shop",
        slug="shop",
        engine="postgresql",
        host="127.0.0.1",
        port=cluster.port,
        username="postgres",
        database_name="postgres",
    )
    # The wrapper pitr_setup writes is the archive_command, as the set-up guide says.
    scripts = tmp_path / "scripts"
    call_command("pitr_setup", "--database", "Shop", "--write", str(scripts))
    (wrapper,) = scripts.iterdir()
    cluster.init(archive=f"{wrapper} archive %p %f")
    cluster.start()
    cluster.execute("SET client_min_messages = warning")
    cluster.execute("CREATE TABLE orders (id integer PRIMARY KEY, label text)")
    return cluster, database, wrapper


def insert(cluster, first, last):
    cluster.execute(
        "INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(%s::int, %s::int) g",
        first,
        last,
    )


def run(backup_id) -> Backup:
    return backup_execute(backup=backup_claim(backup_id=backup_id))


def test_the_wrapper_archives_a_base_backup_on_demand_opens_a_window_and_a_lost_segment_is_refused(
    shop, client_for, organisation, environment, archive_dir
):
    cluster, database, wrapper = shop
    assert stat.S_IMODE(wrapper.stat().st_mode) == 0o700
    switch_and_wait(cluster, database)  # PostgreSQL archives through the wrapper
    assert pitr_coverage(environment=environment)["status"] == "no-window"
    client = client_for(organisation, Role.OPERATOR)

    # A base backup on demand, through the manual trigger.
    response = client.post(
        f"/api/environments/{environment.id}/backups", {"type": "base"}, format="json"
    )
    assert response.status_code == 202, response.content
    (item,) = response.json()["results"]
    assert item["method"] == "physical" and item["database"]["id"] == str(database.id)
    base = run(item["id"])
    assert base.status == BackupStatus.COMPLETED, base.message
    insert(cluster, 1, 100)
    first = switch_and_wait(cluster, database)  # archived by PostgreSQL through the wrapper

    coverage = pitr_coverage(environment=environment)
    assert coverage["status"] == "ok", coverage
    assert coverage["databases"][0]["windows"][0]["baseBackupId"] == str(base.id)
    opened_to = coverage["latestRecoverableTime"]

    # More history, then a segment disappears from the destination.
    time.sleep(1.1)  # a later commit second than the first segment's last
    insert(cluster, 101, 200)
    second = switch_and_wait(cluster, database)
    insert(cluster, 201, 300)
    third = switch_and_wait(cluster, database)
    assert pitr_coverage(environment=environment)["latestRecoverableTime"] > opened_to
    lost = WalSegment.objects.get(database=database, name=second)
    (archive_dir / lost.key).unlink()

    run_pitr_housekeeping()

    coverage = pitr_coverage(environment=environment)
    assert coverage["status"] == "gaps"
    gap = coverage["databases"][0]["gaps"][0]
    assert gap["lostWal"] == [second] and gap["beforeWal"] == third
    assert coverage["latestRecoverableTime"] == opened_to  # shrunk to before the lost one
    assert Alert.objects.filter(dedup_key=gap_key(database), resolved_at__isnull=True).exists()

    # A restore to a time after the gap is refused before anything runs.
    after = WalSegment.objects.get(database=database, name=third).last_xact_at
    response = client.post(
        f"/api/backups/{base.id}/restore",
        {"targetType": "same", "pitrTimestamp": after.isoformat()},
        format="json",
    )
    assert response.status_code == 422, response.content
    assert f"WAL segment {second} of Shop is missing" in response.json()["error"]["message"]
    assert not Restore.objects.exists()
    assert not Backup.objects.filter(trigger=BackupTrigger.SAFETY).exists()
    assert first != second


def test_base_and_logical_backups_leave_no_warning_in_the_server_log(shop, environment):
    cluster, database, _ = shop
    insert(cluster, 1, 10)
    (base,) = Backup.objects.filter(pk__in=[b.pk for b in _request(environment, "base")])
    assert run(base.pk).status == BackupStatus.COMPLETED
    for backup in _request(environment, "database"):
        done = run(backup.pk)
        assert done.status == BackupStatus.COMPLETED, done.message
        assert done.row_counts == {"public.orders": 10}
    log = cluster.log_text()
    assert "there is already a transaction in progress" not in log
    assert "WARNING" not in log, log[-3000:]


def _request(environment, kind):
    from backups.services import backup_request

    return backup_request(environment=environment, kind=kind)
