"""Markers for WAL files archived ahead of PostgreSQL's request, and the fast path that
answers archive_command for them without starting Django.

Why: PostgreSQL runs archive_command once per WAL file, and a Django start-up costs about
a second, which would cap one cluster's archiving near 10-15 MB/s. So ``archive_wal``,
once it has stored the file it was asked for, also stores the next files PostgreSQL has
marked ready (``pg_wal/archive_status/*.ready``) and leaves a marker for each holding the
file's SHA-256. When PostgreSQL then asks for one of them, ``manage.py`` finds the marker,
checks the file still has that checksum, removes the marker and exits 0 before importing
Django. Anything else (no marker, another checksum, an unreadable file) falls through to
the full command, which answers the same question from the database.

No Django imports here: this module runs before Django is set up. A marker is only a
hint; a lost one costs a full run, never a WAL file.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
STALE_MARKER_SECONDS = 24 * 3600


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


def parse_archive_args(args: list[str]) -> tuple[str, str, str] | None:
    """(database id, %p, %f) from ``--database ID [--ahead N] %p %f``, else None."""
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
    if "/" in name or name.startswith("."):
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
