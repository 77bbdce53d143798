from django.core.management.base import BaseCommand, CommandError

from config.errors import InvalidInput
from organizations.models import PathGrant
from organizations.services import path_grant_create, path_grant_revoke
from organizations.tenancy import organisation_by_reference
from organizations.validators import organisation_root


class Command(BaseCommand):
    help = (
        "Grant an organisation a server directory besides its own one under "
        "STRONGBOX_TENANT_ROOT (its SQLite databases, files directories and local "
        "destinations may then lie there), --revoke it, or --list what it may use."
    )

    def add_arguments(self, parser):
        parser.add_argument("organisation", help="Organisation slug or id")
        parser.add_argument("directory", nargs="?", help="An absolute directory")
        parser.add_argument("--revoke", action="store_true", help="Remove the grant instead")
        parser.add_argument("--list", action="store_true", help="Show the organisation's roots")
        parser.add_argument("--note", default="", help="Why it was granted")

    def handle(self, *args, organisation, directory, revoke, list, note, **options):  # noqa: A002
        org = organisation_by_reference(organisation)
        if org is None:
            raise CommandError(f"No organisation with slug or id {organisation!r}.")
        if directory is None and not list:
            raise CommandError("Give a directory to grant (or --revoke), or --list.")
        if directory is not None and revoke:
            if not path_grant_revoke(organisation=org, path=directory):
                raise CommandError(f"{org.slug} has no grant of {directory}.")
            self.stdout.write(f"Revoked {directory} from {org.slug}.")
        elif directory is not None:
            try:
                grant = path_grant_create(organisation=org, path=directory, note=note)
            except InvalidInput as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(f"Granted {grant.path} to {org.slug}.")
        if list:
            self.stdout.write(f"{org.slug} may use: {organisation_root(org) or '(no own root)'}")
            for grant in PathGrant.objects.filter(organisation=org).order_by("path"):
                self.stdout.write(
                    f"{grant.path} (granted){f': {grant.note}' if grant.note else ''}"
                )
