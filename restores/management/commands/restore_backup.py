from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from api.base.routes import parse_uuid
from backups.models import Backup
from config.errors import ApplicationError
from restores.models import RestoreStatus
from restores.plan import replaced_text
from restores.services import restore_claim, restore_execute, restore_request


class Command(BaseCommand):
    help = (
        "Restore a backup now, in this process, into its own environment or another one of "
        "the same organisation. Exits non-zero unless the restore completed."
    )

    def add_arguments(self, parser):
        parser.add_argument("backup", help="Backup id or name")
        parser.add_argument(
            "--target-environment", help="Environment id to restore into (default: the same)"
        )
        parser.add_argument(
            "--target-database",
            help="Database id of the target environment to replace (a one-database backup; "
            "default: the one of the same slug, else the only one of the same engine)",
        )
        parser.add_argument(
            "--to",
            dest="pitr_target",
            help="Point in time to recover a PostgreSQL database to (ISO 8601 with a time "
            "zone, e.g. 2026-11-23T14:05:00Z); needs its WAL archived by Strongbox",
        )
        parser.add_argument(
            "--no-safety-backup",
            action="store_true",
            help="Do not back up the target before overwriting it",
        )

    def handle(
        self,
        *args,
        backup,
        target_environment,
        target_database,
        pitr_target,
        no_safety_backup,
        **options,
    ):
        moment = None
        if pitr_target:
            try:
                moment = datetime.fromisoformat(pitr_target.replace("Z", "+00:00"))
            except ValueError as exc:
                raise CommandError(f"--to {pitr_target!r} is not an ISO 8601 time.") from exc
        found = Backup.objects.filter(name=backup).first()
        if found is None and parse_uuid(backup) is not None:
            found = Backup.objects.filter(pk=parse_uuid(backup)).first()
        if found is None:
            raise CommandError(f"No backup {backup}.")
        try:
            restore = restore_request(
                backup=found,
                target_type="other" if target_environment else "same",
                target_environment=target_environment,
                target_database=target_database,
                pitr_timestamp=moment,
                take_safety_backup=not no_safety_backup,
                enqueue=False,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Replacing {replaced_text(restore.members)}.")
        for warning in restore.plan_warnings:
            self.stdout.write(f"  warning: {warning}")
        claimed = restore_claim(restore_id=restore.id)
        if claimed is None:
            raise CommandError(f"Restore {restore.id} was taken by someone else.")
        done = restore_execute(restore=claimed)
        for phase in done.phases:
            self.stdout.write(
                f"  {phase['name']:<14} {phase['status']:<8} {phase.get('duration_sec', 0):>8.2f}s"
            )
        self.stdout.write(f"{done.id} {done.status}: {done.message}")
        if done.status != RestoreStatus.COMPLETED:
            raise CommandError("The restore did not complete.")
