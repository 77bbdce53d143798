"""Re-encrypt stored secrets under the newest master key; report what still needs old keys.

Run it after putting the new key first in STRONGBOX_MASTER_KEY on every process.
"""

from django.core.management.base import BaseCommand, CommandError

from backups.keys import keys_needed
from config.keyring import master_keys
from organizations.services import SecretsUnreadable, secrets_rotate

_STATES = {
    "newest": "newest key",
    "older": "older key, still configured",
    "unnamed": (
        "recorded before key ids named their master key: readable with whichever "
        "configured master key it was made with"
    ),
    "missing": "NOT CONFIGURED: these cannot be restored until the key is added back",
}


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (database passwords, destination secrets) under the "
        "newest STRONGBOX_MASTER_KEY, and list which keys kept backups still need."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="store_true",
            help="Change nothing; exit 1 if a secret needs re-encrypting or a kept artifact "
            "needs a key that is not configured.",
        )

    def handle(self, *args, check, **options):
        if not master_keys():
            self.stderr.write(
                "No STRONGBOX_MASTER_KEY is set: stored secrets stay under the local key "
                "(STRONGBOX_SECRETS_KEY_FILE)."
            )
        try:
            result = secrets_rotate(dry_run=check)
        except SecretsUnreadable as exc:
            raise CommandError(exc.message) from exc
        rotated = sum(result.rotated.values())
        verb = "to re-encrypt" if check else "re-encrypted"
        for label in result.current:
            self.stdout.write(
                f"{label}: {result.current[label]} current, {result.rotated[label]} {verb}"
            )
        self.stdout.write(
            f"Stored secrets: {sum(result.current.values())} already under the newest key, "
            f"{rotated} {verb}."
        )
        needs = keys_needed()
        if needs:
            self.stdout.write("Kept encrypted artifacts by key (artifacts are not re-encrypted):")
        for need in needs:
            self.stdout.write(
                f"  {need.key}: {need.backups} backup(s), {need.wal_segments} WAL segment(s) "
                f"- {_STATES[need.state]}"
            )
        missing = [need.key for need in needs if need.state == "missing"]
        if missing:
            self.stderr.write(
                "Kept backups need keys that are not configured: " + ", ".join(missing)
            )
        if check and (rotated or missing):
            raise CommandError("rotate_keys --check: something needs attention (see above).")
