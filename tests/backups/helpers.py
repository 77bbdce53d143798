"""Helpers for backup tests: model rows for real databases, and restoring artifacts."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

from django.db import connection

from backups.container import iter_container
from backups.engines import ConnectionSpec
from backups.keys import artifact_keys
from backups.models import Backup, CopyStatus
from backups.pipeline import open_artifact
from backups.services import backup_claim, backup_execute, backup_request
from destinations.backends import backend_for
from destinations.storage import open_artifact_stream
from restores import loading
from tests import factories


def database_for(environment, spec: ConnectionSpec, **extra):
    fields = {
        "engine": spec.engine,
        "host": spec.host,
        "port": spec.port,
        "username": spec.user,
        "password": spec.password,
        "database_name": spec.name,
    }
    return factories.DatabaseFactory(environment=environment, **{**fields, **extra})


def run_backup_now(**request) -> Backup:
    """Request a backup and run it in this process, as a worker would.

    Where a real worker is running (browser tests) it may claim the backup first; then
    this waits for the worker to finish it.
    """
    (backup,) = backup_request(**request)
    claimed = backup_claim(backup_id=backup.id)
    if claimed is not None:
        return backup_execute(backup=claimed)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        backup.refresh_from_db()
        if backup.is_final:
            return backup
        time.sleep(0.2)
    raise AssertionError(f"backup {backup.name} did not finish: {backup.status}")


def run_in_thread(backup: Backup) -> threading.Thread:
    """Claim and run a backup on a thread of this process, as a worker would; the thread
    has an output() for wait_for messages."""

    def run():
        try:
            backup_execute(backup=backup_claim(backup_id=backup.id))
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=f"run-{backup.pk}", daemon=True)
    thread.output = lambda: "(runs in this process)"  # type: ignore[attr-defined]
    thread.start()
    return thread


def plaintext_stream(backup: Backup, copy=None):
    copy = copy or backup.copies.filter(status=CopyStatus.STORED).first()
    raw = open_artifact_stream(backend_for(copy.destination), copy.key)
    return open_artifact(raw, **artifact_keys(backup.organisation, backup.key_id))


def restore_database_artifact(backup: Backup, target: ConnectionSpec, copy=None) -> None:
    """Load an artifact into an existing, empty target, through the restores' loading code."""
    with plaintext_stream(backup, copy) as plain:
        loading.load(target, plain)


def restore_full_artifact(backup: Backup, targets: dict[str, ConnectionSpec], files_dir: Path):
    """Restore each member of a full backup: databases by slug, and the files tree."""
    seen = []
    with plaintext_stream(backup) as plain:
        for name, member in iter_container(plain):
            seen.append(name)
            if name == "files.tar":
                loading.load(ConnectionSpec(engine="files", name=str(files_dir)), member)
            else:
                slug = name.split("/", 1)[1].rsplit(".", 1)[0]
                loading.load(targets[slug], member)
    return seen


def tree_fingerprint(root: Path) -> dict[str, str]:
    """Relative path -> content hash (files) or link target (symlinks)."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                result[rel] = "link:" + os.readlink(path)
            elif path.is_file():
                result[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                result[rel] = "dir"
    return result


def make_files_tree(root: Path) -> Path:
    (root / "uploads" / "2026").mkdir(parents=True)
    (root / "uploads" / "2026" / "a.txt").write_text("hello\n" * 1000)
    (root / "uploads" / "photo.bin").write_bytes(os.urandom(200_000))
    (root / "empty.txt").write_text("")
    (root / "latest").symlink_to("uploads/2026/a.txt")
    return root
