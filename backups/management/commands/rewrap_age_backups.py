"""Give existing age backups to the organisation's current recipients (an escrow key added,
one retired): each header is rewritten with an identity, the payload is left unchanged."""

from django.core.management.base import BaseCommand, CommandError

from backups.models import Encryption
from backups.rewrap import CannotRewrap, age_backup_rewrap, rewrappable_backups
from organizations.models import Organisation


class Command(BaseCommand):
    help = (
        "Re-wrap completed age backups for their organisation's current age recipients "
        "(its own and STRONGBOX_AGE_RECIPIENTS), with the organisation's identity or "
        "STRONGBOX_AGE_IDENTITY_FILE; says for each backup that cannot be re-wrapped why."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organisation", help="slug: only this organisation's backups")
        parser.add_argument("--backup", action="append", default=[], help="a backup's name or id")
        parser.add_argument("--dry-run", action="store_true", help="say what would change")

    def handle(self, *args, organisation, backup, dry_run, **options):
        org = None
        if organisation:
            org = Organisation.objects.filter(slug=organisation).first()
            if org is None:
                raise CommandError(f"No organisation {organisation!r}.")
        backups = rewrappable_backups(org).iterator(chunk_size=500)
        if backup:
            backups = [b for b in backups if b.name in backup or str(b.pk) in backup]
            found = {b.name for b in backups} | {str(b.pk) for b in backups}
            if missing := [name for name in backup if name not in found]:
                raise CommandError(f"No completed backup {', '.join(missing)}.")
        counts = {"re-wrapped": 0, "current": 0, "cannot": 0}
        not_age = {Encryption.AES_256_GCM: 0, Encryption.NONE: 0}
        for item in backups:
            if item.encryption in not_age and not backup:  # one line for all of them, below
                not_age[item.encryption] += 1
                counts["cannot"] += 1
                continue
            try:
                result = age_backup_rewrap(backup=item, dry_run=dry_run)
            except CannotRewrap as exc:
                counts["cannot"] += 1
                self.stdout.write(f"{item.name}: cannot be re-wrapped: {exc}")
                continue
            if not result.changed:
                counts["current"] += 1
                continue
            counts["re-wrapped"] += 1
            verb = "would be re-wrapped" if dry_run else "re-wrapped"
            self.stdout.write(f"{item.name}: {verb} for {result.key_id}")
        if not_age[Encryption.AES_256_GCM]:
            self.stdout.write(
                f"{not_age[Encryption.AES_256_GCM]} AES-256-GCM backup(s) cannot be re-wrapped: "
                "their key is symmetric (see rotate_keys); only age backups have a header."
            )
        if not_age[Encryption.NONE]:
            self.stdout.write(
                f"{not_age[Encryption.NONE]} unencrypted backup(s) cannot be re-wrapped."
            )
        self.stdout.write(
            f"{counts['re-wrapped']} {'to re-wrap' if dry_run else 're-wrapped'}, "
            f"{counts['current']} already for the current recipients, "
            f"{counts['cannot']} cannot be re-wrapped."
        )
        if counts["cannot"] and backup:
            raise CommandError("Some backups named could not be re-wrapped.")
