"""Recover a PostgreSQL database's cluster to a point in time into a new data directory."""

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from backups.engines import EngineError
from config.errors import ApplicationError
from organizations.models import Database
from pitr.restore import pitr_restore


class Command(BaseCommand):
    help = (
        "Restore a PostgreSQL cluster as of --target (ISO 8601 with a time zone) into a NEW "
        "data directory and start it on --port; exits once recovery reached the target."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", required=True, help="Database id")
        parser.add_argument("--target", required=True, help="e.g. 2026-11-23T14:05:00Z")
        parser.add_argument("--datadir", required=True, help="A new, empty directory")
        parser.add_argument("--port", required=True, type=int)
        parser.add_argument("--timeout", type=float, default=600)

    def handle(self, *args, database, target, datadir, port, timeout, **options):
        db = Database.objects.filter(pk=database).first()
        if db is None:
            raise CommandError(f"No database {database}.")
        try:
            when = datetime.fromisoformat(target.replace("Z", "+00:00"))
        except ValueError as exc:
            raise CommandError(f"--target {target!r} is not an ISO 8601 time.") from exc
        try:
            result = pitr_restore(
                database=db, target=when, datadir=datadir, port=port, timeout=timeout
            )
        except (ApplicationError, EngineError) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from exc
        for key, value in result.as_dict().items():
            self.stdout.write(f"{key}: {value}")
