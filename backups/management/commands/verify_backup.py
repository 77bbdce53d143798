from django.core.management.base import BaseCommand, CommandError

from backups.models import Backup
from backups.services import backup_verify


class Command(BaseCommand):
    help = "Re-read every stored copy of a backup and compare it with the recorded checksum."

    def add_arguments(self, parser):
        parser.add_argument("backup", help="Backup id or name")

    def handle(self, *args, backup, **options):
        found = Backup.objects.filter(name=backup).first()
        if found is None:
            try:
                found = Backup.objects.filter(pk=backup).first()
            except Exception:  # noqa: BLE001 - not a UUID
                found = None
        if found is None:
            raise CommandError(f"No backup {backup!r}.")
        ok = backup_verify(backup=found)
        found.refresh_from_db()
        self.stdout.write(found.verification_message)
        if not ok:
            raise CommandError("Verification failed.")
