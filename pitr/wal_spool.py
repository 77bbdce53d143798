"""Markers for WAL files archived ahead of PostgreSQL's request, and the fast path that
answers archive_command for them without starting Django; likewise WAL files fetched
ahead for restore_command during a recovery.

Why: PostgreSQL runs archive_command once per WAL file, and a Django start-up costs about
a second, which would cap one cluster's archiving near 10-15 MB/s. So ``archive_wal``,
once it has stored the file it was asked for, also stores the next files PostgreSQL has
marked ready (``pg_wal/archive_status/*.ready``) and leaves a marker for each holding the
file's SHA-256. When PostgreSQL then asks for one of them, ``manage.py`` finds the marker,
checks the file still has that checksum, removes the marker and exits 0 before importing
Django. Anything else (no marker, another checksum, an unreadable file) falls through to
the full command, which answers the same question from the database.

Recovery is the mirror image: ``fetch_wal``, after writing the file it was asked for,
downloads and verifies the next archived segments of the timeline into the recovery's
prefetch directory (``STRONGBOX_WAL_PREFETCH_DIR``, set by the recovery for its server),
and restore_command for them only moves the file into place.

No Django imports here: this module runs before Django is set up. A marker is only a
hint; a lost one costs a full run, never a WAL file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
STALE_MARKER_SECONDS = 24 * 3600
PREFETCH_ENV = "STRONGBOX_WAL_PREFETCH_DIR"


def spool_root() -> Path:
    """STRONGBOX_WAL_SPOOL_DIR, else ``wal-spool`` in STRONGBOX_VAR_DIR (as the settings say)."""
    configured = os.environ.get("STRONGBOX_WAL_SPOOL_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("STRONGBOX_VAR_DIR") or BASE_DIR / "var") / "wal-spool"


def marker_path(root: Path, database_id: str, name: str) -> Path:
    return root / str(database_id) / name


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def mark_archived(root: Path, database_id: str, name: str, checksum: str) -> None:
    """Record that ``name`` with ``checksum`` is durably archived (atomic write)."""
    path = marker_path(root, database_id, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{name}.{os.getpid()}.tmp")
    temporary.write_text(checksum + "\n", encoding="ascii")
    os.replace(temporary, path)


def forget_stale_markers(root: Path, database_id: str, *, now: float | None = None) -> int:
    """Remove markers PostgreSQL never asked about (e.g. the cluster was replaced)."""
    directory = root / str(database_id)
    if not directory.is_dir():
        return 0
    limit = (now or time.time()) - STALE_MARKER_SECONDS
    removed = 0
    for entry in directory.iterdir():
        try:
            if entry.stat().st_mtime < limit:
                entry.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and not name.startswith(".")


def parse_archive_args(args: list[str]) -> tuple[str, str, str] | None:
    """(database id, first, second) from ``--database ID [--ahead N] first second``, else
    None: ``%p %f`` for archive_wal, ``%f %p`` for fetch_wal."""
    database, positional = None, []
    iterator = iter(args)
    for arg in iterator:
        if arg == "--database":
            database = next(iterator, None)
        elif arg.startswith("--database="):
            database = arg.split("=", 1)[1]
        elif arg == "--ahead":
            next(iterator, None)
        elif arg.startswith("--ahead="):
            continue
        elif arg.startswith("-"):
            return None  # an option only the full command understands (e.g. -v 2)
        else:
            positional.append(arg)
    if not database or len(positional) != 2:
        return None
    return database, positional[0], positional[1]


def archived_ahead(args: list[str]) -> bool:
    """True when ``archive_wal`` with these arguments is already done (marker consumed)."""
    parsed = parse_archive_args(args)
    if parsed is None:
        return False
    database, path, name = parsed
    if not (_plain_name(name) and _plain_name(database)):
        return False
    marker = marker_path(spool_root(), database, name)
    try:
        expected = marker.read_text(encoding="ascii").strip()
        matches = file_sha256(path) == expected
    except (OSError, UnicodeDecodeError):
        return False
    if not matches:
        return False
    try:
        marker.unlink()
    except FileNotFoundError:
        pass
    return True


def fetched_ahead(args: list[str]) -> bool:
    """True when ``fetch_wal`` with these arguments was answered from the prefetch directory
    (the verified file moved to %p)."""
    directory = os.environ.get(PREFETCH_ENV)
    parsed = parse_archive_args(args)
    if not directory or parsed is None:
        return False
    _database, name, path = parsed
    if not _plain_name(name):
        return False
    source = Path(directory) / name
    target = Path(path)
    try:
        os.replace(source, target)
        return True
    except FileNotFoundError:
        return False
    except OSError:
        pass  # another file system: copy beside the target, then rename into place
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(fd, "wb") as out, open(source, "rb") as handle:
            shutil.copyfileobj(handle, out, 1 << 20)
        os.replace(temporary, target)
        source.unlink()
    except OSError:
        return False
    return True
