"""PostgreSQL's archive_command: ``manage.py archive_wal --database <id> %p %f``.

Exits 0 only when the file is durably stored in every destination (PostgreSQL keeps the
file and retries otherwise, so nothing is lost); the reason for a failure goes to stderr,
which PostgreSQL writes to its log. Then it stores the next files PostgreSQL has marked
ready (``--ahead``), so their own archive_command returns before Django even starts
(``manage.py`` checks ``pitr.wal_spool`` first).
"""

import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.errors import ApplicationError
from organizations.models import Database
from pitr.archive import wal_archive, wal_archive_ahead


class Command(BaseCommand):
    help = "Archive one WAL file (use as archive_command: archive_wal --database ID %p %f)."
    requires_system_checks: list = []  # runs once per WAL segment: skip the checks' cost

    def add_arguments(self, parser):
        parser.add_argument("--database", required=True, help="Database id")
        parser.add_argument("path", help="%%p: the file's path, relative to the data directory")
        parser.add_argument("name", help="%%f: the file's name")
        parser.add_argument(
            "--async",
            action="store_true",
            dest="asynchronous",
            help="Asynchronous archiving: answered by manage.py's fast path and the resident "
            "pusher (pitr/wal_async.py); only arguments it does not take end up here",
        )
        parser.add_argument(
            "--ahead",
            type=int,
            default=None,
            help="Also store up to this many further ready WAL files "
            "(default STRONGBOX_WAL_ARCHIVE_AHEAD; 0: only the one asked for)",
        )

    def handle(self, *args, database, path, name, ahead, asynchronous, **options):
        started = time.monotonic()
        db = (
            Database.objects.select_related("environment__project__organisation")
            .filter(pk=database)
            .first()
        )
        if db is None:
            raise CommandError(f"archive_wal: no database {database}.")
        try:
            result = wal_archive(database=db, path=path, name=name)
        except ApplicationError as exc:
            raise CommandError(f"archive_wal: {name} NOT archived: {exc.message}") from exc
        verbose = options.get("verbosity", 1) > 1
        if verbose:
            state = "already archived" if result.already_archived else "archived"
            sys.stderr.write(f"{name} {state} in {time.monotonic() - started:.3f}s\n")
        limit = settings.STRONGBOX_WAL_ARCHIVE_AHEAD if ahead is None else ahead
        try:
            stored = wal_archive_ahead(database=db, path=path, name=name, limit=limit)
        except Exception as exc:  # noqa: BLE001 - the file asked for is stored: still a success
            sys.stderr.write(f"archive_wal: archiving ahead of {name} stopped: {exc}\n")
            return
        if verbose and stored:
            sys.stderr.write(f"also archived ahead: {', '.join(stored)}\n")
