"""Point-in-time recovery for PostgreSQL: WAL archive and fetch, base backups, coverage,
restore to a timestamp, retention and alerts.

In the spirit of pgBackRest and Barman, inside Strongbox:

- PostgreSQL's ``archive_command`` runs ``manage.py archive_wal`` (``wal_archive``): each
  WAL file is compressed, encrypted when the organisation has a key, checksummed and
  written through the same pipeline and sinks as backups into every destination of the
  environment's schedule (or the organisation's default), under
  ``{org}/{project}/{env}/wal/{database}/{file}.zst[.enc]``. It succeeds only when every
  destination holds it durably; archiving a file again with the same content succeeds
  without rewriting it, with other content it is refused (a second cluster writing into
  the same archive, or a restored copy that kept archiving).
- ``restore_command`` runs ``manage.py fetch_wal`` (``wal_fetch``): verified against the
  recorded checksum before PostgreSQL sees it; absent means non-zero (recovery ends there).
- Base backups (``Backup`` kind ``base``, method ``physical``) are pg_basebackup tar
  streams; each is the ``base_backup`` of the WAL that follows it.
- Coverage: per database, the windows in which a ``recovery_target_time`` is reachable (from
  the end of a base backup to the last transaction of the unbroken WAL run after it), the
  archiver status (last archived and failed file, lag, failures) and the gaps.

Modules: ``archive`` (archive/fetch), ``base`` (base backups), ``coverage`` (windows,
status, gaps, target validation), ``restore`` (recovery into a new data directory),
``retention`` (WAL retention, protected base backups, gap and lag alerts). Import from
this package; the names below are its API.

The database's name in the key is a deviation from ``{env}/wal/{file}``: two PostgreSQL
clusters of one environment produce the same WAL file names and must not collide.
"""

from backups.pitr.archive import (
    WalArchiveFailed,
    WalArchiveResult,
    WalConflict,
    WalFetchFailed,
    ready_wal_files,
    wal_archive,
    wal_archive_ahead,
    wal_destinations,
    wal_fetch,
    wal_fetch_ahead,
    wal_key,
)
from backups.pitr.base import base_backup_execute, base_backup_request, run_base_backup
from backups.pitr.coverage import (
    Window,
    database_coverage,
    database_windows,
    pitr_check_target,
    pitr_coverage,
    pitr_validate_timestamp,
    pitr_window,
)
from backups.pitr.restore import (
    PitrRestoreResult,
    RecoveredCopy,
    discard_recovered_copy,
    fetch_wal_argv,
    pitr_restore,
    pitr_stop,
    recovered_copy,
    recovered_copy_dir,
    server_launcher,
)
from backups.pitr.retention import (
    pitr_monitor,
    pitr_protected_backup_ids,
    run_pitr_housekeeping,
    wal_purge_orphans,
    wal_retention_apply,
)

__all__ = [
    "PitrRestoreResult",
    "RecoveredCopy",
    "WalArchiveFailed",
    "WalArchiveResult",
    "WalConflict",
    "WalFetchFailed",
    "Window",
    "base_backup_execute",
    "base_backup_request",
    "database_coverage",
    "database_windows",
    "discard_recovered_copy",
    "fetch_wal_argv",
    "pitr_check_target",
    "pitr_coverage",
    "pitr_monitor",
    "pitr_protected_backup_ids",
    "pitr_restore",
    "pitr_stop",
    "pitr_validate_timestamp",
    "pitr_window",
    "recovered_copy",
    "recovered_copy_dir",
    "run_base_backup",
    "run_pitr_housekeeping",
    "server_launcher",
    "ready_wal_files",
    "wal_archive",
    "wal_archive_ahead",
    "wal_destinations",
    "wal_fetch",
    "wal_fetch_ahead",
    "wal_key",
    "wal_purge_orphans",
    "wal_retention_apply",
]
