"""Faults injected into real processes mid-backup: the S3 store going away, the worker
SIGKILLed, the broker restarted, the app database connection cut.

After each: no backup is left active, no copy is marked stored unless it holds exactly the
recorded bytes, and the failure raised an alert. Each waits with a deadline; none sleeps
blind.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from backups.models import ACTIVE_STATUSES, Backup, BackupStatus, CopyStatus
from backups.services import (
    REQUEUE_AFTER,
    backup_request,
    backups_discard_failed_uploads,
    backups_reap_stale,
    backups_requeue_lost,
)
from tests.backups.helpers import database_for
from tests.fixtures.databases import ConnectionSpec, fill_sqlite
from tests.fixtures.worker import child_database_env as database_env
from tests.fixtures.worker import wait_for
from tests.reliability.helpers import (
    assert_every_good_copy_is_complete,
    assert_failure_alert,
    assert_no_backup_stuck,
    make_big_sqlite,
    pending_uploads,
    stored_objects,
)

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.django_db(transaction=True)]

SOURCE_MIB = 24


def _big_sqlite_database(environment, tmp_path):
    path = tmp_path / "big.sqlite3"
    make_big_sqlite(path, SOURCE_MIB)
    return database_for(environment, ConnectionSpec(engine="sqlite", name=str(path)))


def _request(environment, database, destination) -> Backup:
    (backup,) = backup_request(
        environment=environment,
        kind="database",
        database=database,
        destination_ids=[destination.id],
    )
    return backup


def _wait_mid_upload(backup, server, bucket, worker) -> None:
    """Until the first part of a multipart upload is stored: most of the artifact is still
    to go (seconds at the proxy's rate). Watched on the S3 side alone, so a slow app
    database cannot delay the fault until the upload has finished."""

    def first_part_stored():
        client = server.client()
        for upload in pending_uploads(server, bucket):
            parts = client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            if parts.get("Parts"):
                return True
        return False

    wait_for(
        first_part_stored,
        timeout=90,
        interval=0.05,
        message=f"a first part to be stored; worker log:\n{worker.output()}",
    )


def test_an_s3_outage_mid_upload_fails_the_backup_and_leaves_no_partial_upload(
    environment, tmp_path, own_s3_server, s3_proxy, proxied_s3_destination, start_worker
):
    bucket = proxied_s3_destination.config["bucket"]
    backup = _request(
        environment, _big_sqlite_database(environment, tmp_path), proxied_s3_destination
    )
    worker = start_worker()
    _wait_mid_upload(backup, own_s3_server, bucket, worker)

    s3_proxy.stop()  # the store goes away mid-upload...
    wait_for(
        lambda: Backup.objects.get(pk=backup.pk).status != BackupStatus.IN_PROGRESS,
        timeout=120,
        message=f"the backup to end while S3 is down; worker log:\n{worker.output()}",
    )
    s3_proxy.start()  # ...and comes back.

    backup.refresh_from_db()
    assert backup.status == BackupStatus.FAILED
    assert "Offsite S3" in backup.message
    copy = backup.copies.get()
    assert copy.status == CopyStatus.FAILED
    assert_failure_alert(backup)
    # What the failing upload could not abort (or, had the last part just made it, delete)
    # while the store was down is removed by the periodic housekeeping once it is back.
    backups_discard_failed_uploads()
    assert pending_uploads(own_s3_server, bucket) == []
    assert stored_objects(own_s3_server, bucket) == []
    assert_no_backup_stuck()
    assert_every_good_copy_is_complete()


def test_a_worker_killed_mid_upload_is_reaped_and_its_upload_discarded(
    settings, environment, tmp_path, own_s3_server, proxied_s3_destination, start_worker
):
    bucket = proxied_s3_destination.config["bucket"]
    backup = _request(
        environment, _big_sqlite_database(environment, tmp_path), proxied_s3_destination
    )
    worker = start_worker()
    _wait_mid_upload(backup, own_s3_server, bucket, worker)

    worker.kill()
    worker.stop()
    assert Backup.objects.get(pk=backup.pk).status == BackupStatus.IN_PROGRESS
    later = timezone.now() + timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS + 5)
    assert [b.pk for b in backups_reap_stale(now=later)] == [backup.pk]

    backup.refresh_from_db()
    assert backup.status == BackupStatus.FAILED
    assert "stopped responding" in backup.message
    assert backup.copies.get().status == CopyStatus.FAILED
    assert pending_uploads(own_s3_server, bucket) == []
    assert stored_objects(own_s3_server, bucket) == []
    assert_failure_alert(backup)
    assert_no_backup_stuck()
    assert_every_good_copy_is_complete()


def _small_sqlite_database(environment, make_sqlite_database, rows=50):
    spec = make_sqlite_database()
    fill_sqlite(spec, rows=rows)
    return database_for(environment, spec)


def _wait_until_ended(backup, timeout, worker) -> Backup:
    wait_for(
        lambda: Backup.objects.get(pk=backup.pk).status not in ACTIVE_STATUSES,
        timeout=timeout,
        message=f"{backup.name} to end; worker log:\n{worker.output()}",
    )
    backup.refresh_from_db()
    return backup


def test_a_broker_restart_mid_run_loses_no_backup(
    environment,
    destination,
    tmp_path,
    own_redis,
    own_s3_server,
    proxied_s3_destination,
    make_sqlite_database,
    start_worker,
):
    bucket = proxied_s3_destination.config["bucket"]
    running = _request(
        environment, _big_sqlite_database(environment, tmp_path), proxied_s3_destination
    )
    worker = start_worker(REDIS_URL=own_redis.url)
    _wait_mid_upload(running, own_s3_server, bucket, worker)

    own_redis.kill()
    # Requested while the broker is down: the row commits, its task cannot be enqueued.
    orphan = _request(
        environment, _small_sqlite_database(environment, make_sqlite_database), destination
    )
    own_redis.start()  # empty: it kept nothing
    after = _request(
        environment, _small_sqlite_database(environment, make_sqlite_database), destination
    )

    # The run in flight only talks to the database and S3: it finishes.
    assert _wait_until_ended(running, 120, worker).status == BackupStatus.COMPLETED
    # The worker's pusher reconnects: work queued after the restart is delivered.
    assert _wait_until_ended(after, 90, worker).status == BackupStatus.COMPLETED
    # The lost task: the periodic sweep enqueues the still-scheduled row again.
    assert Backup.objects.get(pk=orphan.pk).status == BackupStatus.SCHEDULED
    later = timezone.now() + REQUEUE_AFTER + timedelta(seconds=1)
    assert [b.pk for b in backups_requeue_lost(now=later)] == [orphan.pk]
    assert _wait_until_ended(orphan, 90, worker).status == BackupStatus.COMPLETED

    assert_no_backup_stuck()
    assert_every_good_copy_is_complete()
    assert pending_uploads(own_s3_server, bucket) == []


def test_a_cut_app_database_connection_mid_run_never_leaves_a_backup_running(
    settings, environment, tmp_path, own_s3_server, proxied_s3_destination, start_worker
):
    if not connection.vendor == "postgresql":
        pytest.skip("SQLite is a file: there is no server connection to cut (PostgreSQL profile)")
    bucket = proxied_s3_destination.config["bucket"]
    backup = _request(
        environment, _big_sqlite_database(environment, tmp_path), proxied_s3_destination
    )
    app_name = f"sbx-fault-{uuid.uuid4().hex[:8]}"
    url = database_env()["DATABASE_URL"] + f"?application_name={app_name}"
    worker = start_worker(DATABASE_URL=url)
    _wait_mid_upload(backup, own_s3_server, bucket, worker)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            [app_name],
        )
        (terminated,) = cursor.fetchone()
    assert terminated >= 1

    def ended_or_abandoned():
        row = Backup.objects.get(pk=backup.pk)
        silent = timezone.now() - row.heartbeat_at > timedelta(seconds=10)
        return row.status not in ACTIVE_STATUSES or silent

    wait_for(ended_or_abandoned, timeout=120, message=f"the run to end; log:\n{worker.output()}")
    backup.refresh_from_db()
    if backup.status in ACTIVE_STATUSES:
        # The worker gave up on it without ending it: the reaper must.
        later = timezone.now() + timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS)
        backups_reap_stale(now=later)
        backup.refresh_from_db()
    assert backup.status in (BackupStatus.COMPLETED, BackupStatus.FAILED), backup.message
    worker.stop()  # whatever it still had in flight has ended
    if backup.status == BackupStatus.FAILED:
        assert_failure_alert(backup)
        assert backup.copies.get().status == CopyStatus.FAILED
        assert stored_objects(own_s3_server, bucket) == [], "a failed backup left an artifact"
    else:
        assert backup.copies.get().status == CopyStatus.STORED
    assert_no_backup_stuck()
    assert_every_good_copy_is_complete()
