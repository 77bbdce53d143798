"""Faults injected into real processes mid-backup: the S3 store going away, the worker
SIGKILLed, the broker restarted, the app database connection cut.

After each: no backup is left active, no copy is marked stored unless it holds exactly the
recorded bytes, and the failure raised an alert. Each waits with a deadline; none sleeps
blind.
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from backups.models import ACTIVE_STATUSES, Backup, BackupStatus, CopyStatus
from backups.services import (
    REQUEUE_AFTER,
    backup_abort,
    backup_request,
    backups_discard_failed_uploads,
    backups_reap_stale,
    backups_requeue_lost,
)
from tests.backups.helpers import database_for, run_in_thread
from tests.fixtures.databases import ConnectionSpec, fill_sqlite
from tests.fixtures.tenants import unique_tenant_dir
from tests.fixtures.worker import child_database_env as database_env
from tests.fixtures.worker import wait_for
from tests.reliability.helpers import (
    MiB,
    assert_every_good_copy_is_complete,
    assert_failure_alert,
    assert_no_backup_stuck,
    assert_restores_the_blobs,
    files_under,
    make_big_sqlite,
    pending_uploads,
    stored_objects,
)

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.django_db(transaction=True)]

SOURCE_MIB = 24


def _big_sqlite_database(environment, tmp_path):
    path = unique_tenant_dir(environment.organisation) / "big.sqlite3"
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


def _wait_upload_open(server, bucket, worker) -> None:
    """Until a multipart upload is open on the S3 side: the dump is streaming and at least a
    part's worth has been read, while the whole artifact still has to pass the proxy."""
    wait_for(
        lambda: pending_uploads(server, bucket),
        timeout=90,
        interval=0.05,
        message=f"a multipart upload to start; worker log:\n{worker.output()}",
    )


def _terminate_connections(application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            [application_name],
        )
        (terminated,) = cursor.fetchone()
    return terminated


def test_a_cut_app_database_connection_mid_run_never_leaves_a_backup_running(
    environment, tmp_path, own_s3_server, s3_proxy, proxied_s3_destination, start_worker
):
    """The worker's connection is cut while the upload is held open: the task thread
    reconnects on its next tick, keeps the heartbeat going and completes the backup.

    (This test used to wait for a first stored part and cut then. With two parts in flight
    the first one is stored close to the end of the upload, so the cut sometimes landed
    after it, in the writes that end the run: that path escaped as an unexpected error and
    left the copy uploading. The proxy now holds the upload until the worker has
    reconnected, so the cut lands mid-run every time; the end-of-run cut has its own test,
    tests/backups/test_running.py.)
    """
    if not connection.vendor == "postgresql":
        pytest.skip("SQLite is a file: there is no server connection to cut (PostgreSQL profile)")
    bucket = proxied_s3_destination.config["bucket"]
    backup = _request(
        environment, _big_sqlite_database(environment, tmp_path), proxied_s3_destination
    )
    app_name = f"sbx-fault-{uuid.uuid4().hex[:8]}"
    url = database_env()["DATABASE_URL"] + f"?application_name={app_name}"
    worker = start_worker(DATABASE_URL=url)
    _wait_upload_open(own_s3_server, bucket, worker)

    s3_proxy.pause()  # the upload cannot finish while the connection is cut
    cut_at = timezone.now()
    assert _terminate_connections(app_name) >= 1
    # Written a second after the cut: on a new connection (the old one is gone).
    wait_for(
        lambda: Backup.objects.get(pk=backup.pk).heartbeat_at > cut_at + timedelta(seconds=1),
        timeout=30,
        message=f"a heartbeat on a new connection; worker log:\n{worker.output()}",
    )
    assert Backup.objects.get(pk=backup.pk).status == BackupStatus.IN_PROGRESS
    s3_proxy.resume()

    backup = _wait_until_ended(backup, 120, worker)
    assert backup.status == BackupStatus.COMPLETED, backup.message
    assert backup.copies.get().status == CopyStatus.STORED
    assert pending_uploads(own_s3_server, bucket) == []
    assert_no_backup_stuck()
    assert_every_good_copy_is_complete()
    assert_restores_the_blobs(backup, tmp_path)


# --- every kind ends clean -------------------------------------------------------------------


def _source_of_kind(kind: str, environment, tmp_path):
    """About SOURCE_MIB of random bytes: one database, a files tree, or (full) two databases
    and a files tree together."""
    if kind == "database":
        return _big_sqlite_database(environment, tmp_path)
    files = unique_tenant_dir(environment.organisation, "files")
    (files / "uploads").mkdir(parents=True)
    share = SOURCE_MIB if kind == "filesystem" else SOURCE_MIB // 3
    (files / "uploads" / "video.bin").write_bytes(os.urandom(share * MiB))
    environment.files_path = str(files)
    environment.save(update_fields=["files_path"])
    if kind == "full":
        for slug in ("orders", "ledger"):
            path = files.parent / f"{slug}.sqlite3"
            make_big_sqlite(path, share)
            database_for(environment, ConnectionSpec(engine="sqlite", name=str(path)), slug=slug)
    return None


@pytest.mark.parametrize("ending", ["aborted", "reaped"])
@pytest.mark.parametrize("kind", ["database", "filesystem", "full"])
def test_a_backup_of_any_kind_ended_mid_upload_leaves_no_copy_uploading_and_no_partial_artifact(
    kind,
    ending,
    settings,
    environment,
    destination,
    tmp_path,
    own_s3_server,
    proxied_s3_destination,
):
    bucket = proxied_s3_destination.config["bucket"]
    database = _source_of_kind(kind, environment, tmp_path)
    (backup,) = backup_request(
        environment=environment,
        kind=kind,
        database=database,
        destination_ids=[destination.id, proxied_s3_destination.id],
    )
    runner = run_in_thread(backup)
    # The upload is open and the local copy half written (paced by the slow S3 copy).
    _wait_upload_open(own_s3_server, bucket, runner)

    if ending == "aborted":
        backup_abort(backup=Backup.objects.get(pk=backup.pk))
    else:
        # As the reaper will see it once the heartbeat is older than the timeout.
        timeout = settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS
        later = timezone.now() + timedelta(seconds=timeout + 5)
        assert [b.pk for b in backups_reap_stale(now=later)] == [backup.pk]
    runner.join(timeout=60)
    assert not runner.is_alive()

    backup.refresh_from_db()
    expected = BackupStatus.ABORTED if ending == "aborted" else BackupStatus.FAILED
    assert backup.status == expected, backup.message
    assert sorted(backup.copies.values_list("status", flat=True)) == [CopyStatus.FAILED] * 2
    assert pending_uploads(own_s3_server, bucket) == []
    assert stored_objects(own_s3_server, bucket) == []
    assert files_under(settings.STRONGBOX_LOCAL_DESTINATION_ROOT) == []
    assert_no_backup_stuck()
