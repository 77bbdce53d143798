"""A backup while it runs: heartbeats, aborts, a dead worker, a real django-q2 worker."""

import threading
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import OperationalError, connection
from django.utils import timezone
from django_q.tasks import async_task

from alerts.models import Alert, AlertKind
from backups import execution
from backups.models import Backup, BackupStatus, CopyStatus, Phase
from backups.services import (
    backup_abort,
    backup_claim,
    backup_delete,
    backup_delete_artifacts,
    backup_execute,
    backup_request,
    backups_reap_stale,
)
from config.errors import Conflict
from tests import factories
from tests.backups.helpers import database_for, run_backup_now
from tests.fixtures.databases import fill_postgres, fill_sqlite
from tests.fixtures.s3 import s3_destination_config
from tests.fixtures.worker import wait_for


def _files_under(root) -> list[Path]:
    root = Path(root)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _lock_table(spec, table="customers"):
    """Hold an exclusive lock so that any dump of the database blocks on it."""
    conn = psycopg.connect(
        host=spec.host, port=spec.port, user=spec.user, dbname=spec.name, autocommit=False
    )
    conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return conn


def _execute_in_thread(backup):
    def run():
        try:
            claimed = backup_claim(backup_id=backup.id)
            backup_execute(backup=claimed)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_blocked_dump_keeps_its_heartbeat_and_can_be_aborted(
    settings, environment, destination, postgres_spec
):
    fill_postgres(postgres_spec, rows=50)
    database = database_for(environment, postgres_spec)
    (backup,) = backup_request(environment=environment, kind="database", database=database)
    lock = _lock_table(postgres_spec)
    try:
        thread = _execute_in_thread(backup)
        first = wait_for(
            lambda: (
                Backup.objects.filter(pk=backup.pk, heartbeat_at__isnull=False)
                .values_list("heartbeat_at", flat=True)
                .first()
            ),
            timeout=10,
            message="a first heartbeat",
        )
        wait_for(
            lambda: Backup.objects.get(pk=backup.pk).heartbeat_at > first + timedelta(seconds=1),
            timeout=10,
            message="the heartbeat to advance while the dump is blocked",
        )
        backup_abort(backup=Backup.objects.get(pk=backup.pk))
        assert Backup.objects.get(pk=backup.pk).status == BackupStatus.ABORTING
    finally:
        lock.rollback()
        lock.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    backup.refresh_from_db()
    assert backup.status == BackupStatus.ABORTED
    assert backup.copies.get().status == CopyStatus.FAILED
    assert _files_under(settings.STRONGBOX_LOCAL_DESTINATION_ROOT) == []


@pytest.mark.django_db
def test_a_second_backup_of_the_same_database_while_one_runs_is_a_conflict(
    environment, destination
):
    database = factories.DatabaseFactory(environment=environment)
    backup_request(environment=environment, kind="database", database=database)
    with pytest.raises(Conflict) as raised:
        backup_request(environment=environment, kind="database", database=database)
    assert raised.value.status_code == 409
    assert "already running" in raised.value.message


@pytest.mark.django_db
def test_the_reaper_fails_a_backup_whose_worker_stopped_and_removes_partial_files(
    settings, environment, destination
):
    database = factories.DatabaseFactory(environment=environment)
    (backup,) = backup_request(environment=environment, kind="database", database=database)
    claimed = backup_claim(backup_id=backup.id)
    copy = factories.BackupCopyFactory(
        backup=claimed, destination=destination, key="a/b/c.sqlite3.zst", status="uploading"
    )
    partial = Path(settings.STRONGBOX_LOCAL_DESTINATION_ROOT) / "a/b/.c.sqlite3.zst.partial-1"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half")
    later = timezone.now() + timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS + 5)

    reaped = backups_reap_stale(now=later)

    assert [b.pk for b in reaped] == [backup.pk]
    backup.refresh_from_db()
    assert backup.status == BackupStatus.FAILED
    assert "stopped responding" in backup.message
    assert not partial.exists()
    copy.refresh_from_db()
    assert copy.status == CopyStatus.FAILED
    assert Alert.objects.filter(kind=AlertKind.BACKUP_FAILED, backup=backup).exists()


@pytest.mark.django_db
def test_the_reaper_leaves_a_backup_with_a_fresh_heartbeat_alone(environment, destination):
    database = factories.DatabaseFactory(environment=environment)
    (backup,) = backup_request(environment=environment, kind="database", database=database)
    backup_claim(backup_id=backup.id)
    assert backups_reap_stale() == []


@pytest.mark.django_db
def test_deleting_removes_every_copy_and_keeps_the_row_for_audit(
    settings, environment, destination, sqlite_spec
):
    fill_sqlite(sqlite_spec, rows=10)
    backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, sqlite_spec)
    )
    assert _files_under(settings.STRONGBOX_LOCAL_DESTINATION_ROOT)

    backup = backup_delete(backup=backup)
    assert backup.status == BackupStatus.DELETING
    backup_delete_artifacts(backup=backup)

    backup.refresh_from_db()
    assert backup.status == BackupStatus.DELETED
    assert backup.copies.get().status == CopyStatus.DELETED
    assert _files_under(settings.STRONGBOX_LOCAL_DESTINATION_ROOT) == []


@pytest.mark.django_db
def test_a_running_backup_cannot_be_deleted(environment, destination):
    database = factories.DatabaseFactory(environment=environment)
    (backup,) = backup_request(environment=environment, kind="database", database=database)
    with pytest.raises(Conflict):
        backup_delete(backup=backup)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_backup_once_even_when_the_task_is_delivered_twice(
    environment, destination, sqlite_spec, start_worker
):
    fill_sqlite(sqlite_spec, rows=100)
    database = database_for(environment, sqlite_spec)
    (backup,) = backup_request(environment=environment, kind="database", database=database)
    # backup_request enqueued the task on commit; deliver it a second time on purpose.
    async_task("backups.tasks.run_backup", str(backup.id))
    worker = start_worker()

    wait_for(
        lambda: Backup.objects.get(pk=backup.pk).status == BackupStatus.COMPLETED,
        timeout=60,
        message=f"the backup to complete; worker log:\n{worker.output()}",
    )
    from django_q.models import Task

    def runs_of_this_backup():
        # Only this backup's deliveries: an earlier test may have left tasks in the queue.
        tasks = Task.objects.filter(func="backups.tasks.run_backup")
        return [t.result for t in tasks if tuple(t.args or ()) == (str(backup.id),)]

    wait_for(lambda: len(runs_of_this_backup()) == 2, 30)
    assert sorted(runs_of_this_backup()) == ["completed", "skipped"]
    assert Backup.objects.get(pk=backup.pk).copies.get().status == CopyStatus.STORED


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_backup_leaves_a_failed_backup_and_no_artifact(
    settings, environment, destination, postgres_spec, start_worker
):
    fill_postgres(postgres_spec, rows=50)
    database = database_for(environment, postgres_spec)
    lock = _lock_table(postgres_spec)
    try:
        (backup,) = backup_request(environment=environment, kind="database", database=database)
        worker = start_worker()
        wait_for(
            lambda: Backup.objects.get(pk=backup.pk).status == BackupStatus.IN_PROGRESS,
            timeout=60,
            message=f"the worker to start the backup; log:\n{worker.output()}",
        )
        worker.kill()
        worker.stop()
    finally:
        lock.rollback()
        lock.close()
    later = timezone.now() + timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS + 5)
    backups_reap_stale(now=later)
    backup.refresh_from_db()
    assert backup.status == BackupStatus.FAILED
    assert "stopped responding" in backup.message
    assert _files_under(settings.STRONGBOX_LOCAL_DESTINATION_ROOT) == []


@pytest.mark.django_db
def test_a_schedule_backs_up_the_free_databases_when_one_is_still_busy(environment, destination):
    busy = factories.DatabaseFactory(environment=environment, slug="a-busy")
    free = factories.DatabaseFactory(environment=environment, slug="b-free")
    backup_request(environment=environment, kind="database", database=busy)

    created = backup_request(environment=environment, kind="database", trigger="scheduled")

    assert [b.database for b in created] == [free]
    with pytest.raises(Conflict):
        backup_request(environment=environment, kind="database")


@pytest.mark.s3
@pytest.mark.django_db(transaction=True)
def test_an_app_database_error_as_the_run_ends_fails_the_backup_and_keeps_no_copy(
    monkeypatch, settings, organisation, environment, destination, sqlite_spec, s3_server, s3_bucket
):
    """The app database connection drops after the upload, in the writes that end the run
    (the path a cut connection took in the fault tests): nothing the run stored is kept."""
    config, secrets = s3_destination_config(s3_server, s3_bucket)
    offsite = factories.DestinationFactory(
        organisation=organisation, name="Offsite", kind="s3", config=config, secrets=secrets
    )
    fill_sqlite(sqlite_spec, rows=200)
    database = database_for(environment, sqlite_spec)
    (backup,) = backup_request(
        environment=environment,
        kind="database",
        database=database,
        destination_ids=[destination.id, offsite.id],
    )
    real_update = execution.update_backup

    def connection_lost_at_verify(backup, **fields):
        if fields.get("phase") == Phase.VERIFY:
            raise OperationalError("server closed the connection unexpectedly")
        real_update(backup, **fields)

    monkeypatch.setattr(execution, "update_backup", connection_lost_at_verify)

    backup = backup_execute(backup=backup_claim(backup_id=backup.id))

    assert backup.status == BackupStatus.FAILED
    assert "server closed the connection" in backup.message
    assert Alert.objects.filter(kind=AlertKind.BACKUP_FAILED, backup=backup).exists()
    assert sorted(backup.copies.values_list("status", flat=True)) == [CopyStatus.FAILED] * 2
    listing = s3_server.client().list_objects_v2(Bucket=s3_bucket)
    assert listing.get("Contents", []) == []
    assert s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert _files_under(settings.STRONGBOX_LOCAL_DESTINATION_ROOT) == []
