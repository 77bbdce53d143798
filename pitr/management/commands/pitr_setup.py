"""``manage.py pitr_setup --database <id|name>``: what a database server needs to archive
WAL into Strongbox. Prints (or with ``--write DIR`` writes, 0700) a wrapper script with the
complete environment ``archive_wal``/``fetch_wal`` need, and the postgresql.conf lines."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.errors import ApplicationError
from organizations.models import Database
from organizations.selectors import database_by_reference
from pitr.archive import require_postgresql
from pitr.setup import wal_setup, write_wal_setup


def _database(reference: str) -> Database:
    try:
        return database_by_reference(reference)
    except ApplicationError as exc:
        raise CommandError(exc.message) from exc


class Command(BaseCommand):
    help = "Print or write the archive_command wrapper of a PostgreSQL database."

    def add_arguments(self, parser):
        parser.add_argument("--database", required=True, help="Database id or name")
        parser.add_argument("--write", metavar="DIR", help="Write the script into DIR (0700)")
        parser.add_argument(
            "--async",
            action="store_true",
            dest="asynchronous",
            help="Archive asynchronously: a resident pusher stores several files at once "
            "(docs/pitr.md)",
        )

    def handle(self, *args, database, write, asynchronous, **options):
        db = _database(database)
        try:
            require_postgresql(db)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        setup = wal_setup(database=db, asynchronous=asynchronous)
        if not write:
            self.stdout.write(setup.script, ending="")
            self.stderr.write(
                f"# Save it as e.g. /etc/postgresql/strongbox/{setup.script_name} (mode 0700, "
                "owned by postgres), or use --write DIR; then in postgresql.conf:\n"
                + self._lines(setup, f"/etc/postgresql/strongbox/{setup.script_name}")
            )
            return
        path = write_wal_setup(setup, Path(write))
        self.stdout.write(f"Wrote {path}\n" + self._lines(setup, str(path)))
        if setup.has_secrets:
            self.stderr.write(
                f"{path} holds secrets (its environment): keep it readable by PostgreSQL's "
                "user only."
            )

    @staticmethod
    def _lines(setup, path: str) -> str:
        archive = setup.archive_command(path).replace("'", "''")
        restore = setup.restore_command(path).replace("'", "''")
        return (
            "wal_level = replica\n"
            "archive_mode = on\n"
            f"archive_command = '{archive}'\n"
            f"# recovery only: restore_command = '{restore}'\n"
        )
