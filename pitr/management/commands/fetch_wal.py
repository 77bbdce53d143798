"""PostgreSQL's restore_command: ``manage.py fetch_wal --database <id> %f %p``.

Writes the verified file to %p and exits 0; exits 1 when the file was never archived (so
recovery ends where the archive ends) and 2 when it was archived but cannot be read intact.
When the recovery set ``STRONGBOX_WAL_PREFETCH_DIR``, it then downloads the next segments
there (``--ahead``), and ``manage.py`` hands them over without starting Django.
"""

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from organizations.models import Database
from pitr.archive import WalFetchFailed, wal_fetch, wal_fetch_ahead
from pitr.wal_spool import PREFETCH_ENV


class Command(BaseCommand):
    help = "Fetch one archived WAL file (use as restore_command: fetch_wal --database ID %f %p)."
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("--database", required=True, help="Database id")
        parser.add_argument("name", help="%%f: the file PostgreSQL asks for")
        parser.add_argument("path", help="%%p: where to write it")
        parser.add_argument(
            "--ahead",
            type=int,
            default=None,
            help=f"Prefetch up to this many next segments into ${PREFETCH_ENV} "
            "(default STRONGBOX_WAL_FETCH_AHEAD)",
        )

    def handle(self, *args, database, name, path, ahead, **options):
        db = (
            Database.objects.select_related("environment__project__organisation")
            .filter(pk=database)
            .first()
        )
        if db is None:
            sys.stderr.write(f"fetch_wal: no database {database}\n")
            sys.exit(2)
        try:
            found = wal_fetch(database=db, name=name, target=path)
        except WalFetchFailed as exc:
            sys.stderr.write(f"fetch_wal: {exc.message}\n")
            sys.exit(2)
        if not found:
            # Normal at the end of the archive and when PostgreSQL probes for timelines.
            sys.exit(1)
        directory = os.environ.get(PREFETCH_ENV)
        if directory:
            limit = settings.STRONGBOX_WAL_FETCH_AHEAD if ahead is None else ahead
            try:
                wal_fetch_ahead(database=db, name=name, directory=Path(directory), limit=limit)
            except Exception as exc:  # noqa: BLE001 - the file asked for is in place
                sys.stderr.write(f"fetch_wal: prefetching after {name} stopped: {exc}\n")
