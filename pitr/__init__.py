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

Modules (import from the module that defines a name: this package imports nothing, so that
Django can load the app and ``manage.py`` can use ``wal_spool`` before Django starts):
``archive`` (archive/fetch), ``base`` (base backups: ``BaseBackupPlan``, the source plan the
shared execution core in ``backups/execution.py`` runs), ``coverage`` (windows, status, gaps,
target validation), ``restore`` (recovery into a new data directory), ``retention`` (WAL
retention, protected base backups, gap and lag alerts), ``tasks`` (the periodic
housekeeping), ``physical`` (Django-free: pg_basebackup, WAL names, recovery settings),
``wal_spool`` (Django-free: the archive/fetch-ahead markers), ``wal_async`` (Django-free: the
asynchronous archive_command and its spool), ``pusher`` (the resident pusher it starts),
``wal_header`` (Django-free: a segment's page header) and the management commands
``archive_wal``, ``fetch_wal``, ``wal_pusher`` and ``pitr_restore``.

The models stay in the apps that had them (``Backup`` kind ``base``, ``BaseBackupPosition``,
``WalSegment``, ``WalArchiver`` in ``backups.models``; ``Restore.pitr_target`` in
``restores.models``): moving them needs state-only migrations, a step of its own.

The database's name in the key is a deviation from ``{env}/wal/{file}``: two PostgreSQL
clusters of one environment produce the same WAL file names and must not collide.
"""
