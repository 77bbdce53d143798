"""The sweeps that clean up after faults, without the fault: lost tasks, unrecorded
artifacts, a broker that is down when a backup is requested."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backups import services
from backups.models import Backup, BackupStatus, CopyStatus
from backups.services import (
    REQUEUE_AFTER,
    backup_claim,
    backup_request,
    backups_discard_failed_uploads,
    backups_reap_stale,
    backups_requeue_lost,
)
from tests import factories
from tests.fixtures.s3 import s3_destination_config

pytestmark = pytest.mark.django_db


def _request(environment):
    database = factories.DatabaseFactory(environment=environment)
    (backup,) = backup_request(environment=environment, kind="database", database=database)
    return backup


def test_a_backup_left_scheduled_is_enqueued_again_once(environment, destination, monkeypatch):
    lost = _request(environment)  # its on-commit enqueue never runs here: a lost task
    enqueued = []
    monkeypatch.setattr(services, "enqueue_backup", enqueued.append)

    assert backups_requeue_lost() == []  # just enqueued: not lost yet
    later = timezone.now() + REQUEUE_AFTER + timedelta(seconds=1)
    assert [b.pk for b in backups_requeue_lost(now=later)] == [lost.pk]
    assert backups_requeue_lost(now=later) == []  # not again until another REQUEUE_AFTER
    assert [b.pk for b in enqueued] == [lost.pk]


def test_a_started_backup_is_never_enqueued_again(environment, destination, monkeypatch):
    backup = _request(environment)
    backup_claim(backup_id=backup.id)
    monkeypatch.setattr(services, "enqueue_backup", lambda backup: pytest.fail("enqueued"))
    assert backups_requeue_lost(now=timezone.now() + 2 * REQUEUE_AFTER) == []


def test_a_request_while_the_broker_is_down_still_records_the_backup(
    environment, destination, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("the broker is down")

    monkeypatch.setattr(services, "async_task", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        backup = _request(environment)
    assert Backup.objects.get(pk=backup.pk).status == BackupStatus.SCHEDULED


def test_the_reaper_removes_an_artifact_its_dead_worker_never_recorded(
    settings, environment, destination
):
    backup = _request(environment)
    claimed = backup_claim(backup_id=backup.id)
    copy = factories.BackupCopyFactory(
        backup=claimed, destination=destination, key="o/p/e/x.sqlite3.zst", status="uploading"
    )
    # The upload was committed, then the worker died before it marked the copy stored.
    final = Path(settings.STRONGBOX_LOCAL_DESTINATION_ROOT) / "o/p/e/x.sqlite3.zst"
    final.parent.mkdir(parents=True)
    final.write_bytes(b"complete but never verified")
    later = timezone.now() + timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS + 5)

    assert [b.pk for b in backups_reap_stale(now=later)] == [backup.pk]
    assert not final.exists()
    copy.refresh_from_db()
    assert copy.status == CopyStatus.FAILED


@pytest.mark.s3
def test_the_sweep_removes_what_a_failed_s3_upload_left_once_the_store_is_back(
    organisation, environment, s3_server, s3_bucket
):
    config, secrets = s3_destination_config(s3_server, s3_bucket)
    s3 = factories.DestinationFactory(
        organisation=organisation, kind="s3", config=config, secrets=secrets
    )
    (backup,) = backup_request(
        environment=environment,
        kind="database",
        database=factories.DatabaseFactory(environment=environment),
        destination_ids=[s3.id],
    )
    Backup.objects.filter(pk=backup.pk).update(
        status=BackupStatus.FAILED, completed_at=timezone.now()
    )
    factories.BackupCopyFactory(backup=backup, destination=s3, key="a/b.zst", status="failed")
    client = s3_server.client()
    # An upload that could not be aborted, and one that completed but could not be checked.
    client.create_multipart_upload(Bucket=s3_bucket, Key="backups/a/b.zst")
    client.put_object(Bucket=s3_bucket, Key="backups/a/b.zst", Body=b"unverified")

    assert backups_discard_failed_uploads() == 1
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
