"""``manage.py verify_wal``: check the WAL archive against its destinations now.

Lists every archived WAL file in each destination (recorded size) and re-reads up to
``--bytes`` of the least recently verified (checksum), as the periodic housekeeping does;
``--all`` re-reads everything. Exits 1 when a file is missing or damaged somewhere.
"""

from django.core.management.base import BaseCommand, CommandError

from organizations.models import Database
from pitr.verify import wal_verify_all


class Command(BaseCommand):
    help = "Verify the WAL archive: every file in every destination, sizes and checksums."

    def add_arguments(self, parser):
        parser.add_argument("--database", action="append", help="Database id (repeatable)")
        budget = parser.add_mutually_exclusive_group()
        budget.add_argument(
            "--bytes",
            type=int,
            default=None,
            help="Re-read at most this many bytes (default STRONGBOX_WAL_VERIFY_BYTES_PER_RUN; "
            "0: listing only)",
        )
        budget.add_argument("--all", action="store_true", help="Re-read every file")

    def handle(self, *args, database, bytes, all, **options):  # noqa: A002
        databases = None
        if database:
            databases = list(
                Database.objects.filter(pk__in=database).select_related(
                    "environment__project__organisation"
                )
            )
            if len(databases) != len(set(database)):
                raise CommandError("No such database: " + ", ".join(database))
        budget = (1 << 62) if all else bytes
        report = wal_verify_all(databases=databases, reread_budget=budget)
        self.stdout.write(
            f"{report.databases} database(s): {report.listed} file copies listed in "
            f"{report.listing_calls} listing call(s) ({report.listing_seconds:.2f} s); "
            f"{report.reread} file(s) re-read, {report.reread_bytes} bytes "
            f"({report.reread_seconds:.2f} s)"
        )
        for name, problem in sorted(report.problems.items()):
            lost = " (lost: no intact copy)" if name in report.lost else ""
            self.stdout.write(f"{name}: {problem}{lost}")
        for error in report.errors:
            self.stderr.write(error)
        if report.problems:
            raise CommandError(f"{len(report.problems)} WAL file(s) missing or damaged.")
