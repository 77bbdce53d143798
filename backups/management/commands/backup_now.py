from django.core.management.base import BaseCommand, CommandError

from backups.models import BackupStatus
from backups.services import backup_claim, backup_execute, backup_request
from config.errors import ApplicationError
from organizations.selectors import database_by_reference, environment_by_reference


class Command(BaseCommand):
    help = (
        "Back up an environment or one database now. By default the backup runs in this "
        "process and the command exits non-zero unless it completed; --enqueue hands it to "
        "the workers instead."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument(
            "--environment",
            help="Environment: its id, organisation/project/environment slugs, "
            "project/environment, or its slug or name when only one environment has it",
        )
        target.add_argument(
            "--database",
            help="Database: its id, organisation/project/environment/database slugs, or its "
            "name or slug when only one database has it",
        )
        parser.add_argument(
            "--kind",
            default="database",
            choices=["database", "filesystem", "full", "base"],
            help="base: a PostgreSQL base backup (point-in-time recovery) of each PostgreSQL "
            "database (or of --database), opening a recovery window as soon as it completes",
        )
        parser.add_argument("--base", action="store_true", help="Same as --kind base")
        parser.add_argument("--destination", action="append", help="Destination id (repeatable)")
        parser.add_argument("--enqueue", action="store_true")

    def handle(self, *args, environment, database, kind, destination, enqueue, base, **options):
        kind = "base" if base else kind
        db = None
        try:
            if database:
                db = database_by_reference(database)
                env = db.environment
            else:
                env = environment_by_reference(environment)
            backups = backup_request(
                environment=env,
                kind=kind,
                database=db,
                destination_ids=destination,
                description="Backup from the command line",
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        failed = False
        for backup in backups:
            if enqueue:
                self.stdout.write(f"{backup.id} {backup.name} enqueued")
                continue
            claimed = backup_claim(backup_id=backup.id)
            if claimed is None:
                self.stdout.write(f"{backup.id} {backup.name} was taken by a worker")
                continue
            done = backup_execute(backup=claimed)
            self.stdout.write(f"{done.id} {done.name} {done.status} {done.size or 0} bytes")
            if done.status != BackupStatus.COMPLETED:
                self.stderr.write(done.message)
                failed = True
        if failed:
            raise CommandError("At least one backup did not complete.")
