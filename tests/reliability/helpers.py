"""Checks every fault test ends with, and sources big enough for a multipart upload."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from alerts.models import Alert, AlertKind
from backups.engines import ConnectionSpec, get_engine
from backups.models import ACTIVE_STATUSES, Backup, BackupCopy, CopyStatus
from destinations.backends import backend_for
from destinations.storage import open_artifact_stream
from tests.backups.helpers import restore_database_artifact
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


def blobs_digest(path) -> str:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, payload FROM blobs ORDER BY id").fetchall()
    conn.close()
    digest = hashlib.sha256()
    for row_id, payload in rows:
        digest.update(f"{row_id}:".encode() + payload)
    return f"{len(rows)} rows {digest.hexdigest()}"


def assert_restores_the_blobs(backup: Backup, tmp_path: Path) -> None:
    """Restore a make_big_sqlite backup into a new file and compare every row."""
    target = ConnectionSpec(engine="sqlite", name=str(tmp_path / f"restored-{backup.pk}.sqlite3"))
    get_engine("sqlite").create_database(target)
    restore_database_artifact(backup, target)
    assert blobs_digest(target.name) == blobs_digest(backup.database.database_name)


def files_under(root) -> list[Path]:
    root = Path(root)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


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
        with open_artifact_stream(backend_for(copy.destination), copy.key) as stream:
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
