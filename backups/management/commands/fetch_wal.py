"""PostgreSQL's restore_command: ``manage.py fetch_wal --database <id> %f %p``.

Writes the verified file to %p and exits 0; exits 1 when the file was never archived (so
recovery ends where the archive ends) and 2 when it was archived but cannot be read intact.
"""

import sys

from django.core.management.base import BaseCommand

from backups.pitr import WalFetchFailed, wal_fetch
from organizations.models import Database


class Command(BaseCommand):
    help = "Fetch one archived WAL file (use as restore_command: fetch_wal --database ID %f %p)."
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("--database", required=True, help="Database id")
        parser.add_argument("name", help="%%f: the file PostgreSQL asks for")
        parser.add_argument("path", help="%%p: where to write it")

    def handle(self, *args, database, name, path, **options):
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
