"""Checks every fault test ends with, and sources big enough for a multipart upload."""

from __future__ import annotations

import hashlib
import os
import sqlite3

from alerts.models import Alert, AlertKind
from backups.models import ACTIVE_STATUSES, Backup, BackupCopy, CopyStatus
from destinations.storage import open_artifact_stream
from tests.fixtures.s3 import MotoServer

MiB = 1024 * 1024


def make_big_sqlite(path, mib: int) -> None:
    """Random blobs, so neither zstd nor anything else makes the artifact small."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE blobs (id integer PRIMARY KEY, payload blob)")
        conn.executemany(
            "INSERT INTO blobs VALUES (?, ?)", ((i, os.urandom(MiB)) for i in range(mib))
        )
    conn.close()


def pending_uploads(server: MotoServer, bucket: str) -> list[dict]:
    return server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def stored_objects(server: MotoServer, bucket: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listing.get("Contents", [])]


def assert_no_backup_stuck() -> None:
    stuck = list(Backup.objects.filter(status__in=ACTIVE_STATUSES).values_list("name", "status"))
    assert stuck == [], f"backups left active: {stuck}"


def assert_every_good_copy_is_complete() -> None:
    """A copy marked stored must hold exactly the bytes recorded on the backup."""
    for copy in BackupCopy.objects.filter(status=CopyStatus.STORED).select_related(
        "backup", "destination"
    ):
        digest = hashlib.sha256()
        size = 0
        with open_artifact_stream(copy.destination, copy.key) as stream:
            while chunk := stream.read(MiB):
                digest.update(chunk)
                size += len(chunk)
        assert (size, digest.hexdigest()) == (copy.backup.size, copy.backup.checksum_sha256), (
            f"{copy} is marked stored but is not the recorded artifact"
        )


def assert_failure_alert(backup: Backup) -> None:
    assert Alert.objects.filter(kind=AlertKind.BACKUP_FAILED, backup=backup).exists(), (
        f"no backup_failed alert for {backup.name}"
    )
