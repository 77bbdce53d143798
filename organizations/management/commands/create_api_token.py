from django.core.management.base import BaseCommand, CommandError

from organizations.models import Role
from organizations.services import api_token_create
from organizations.tenancy import organisation_by_reference


class Command(BaseCommand):
    help = "Create an API token for an organisation and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("organisation", help="Organisation slug or id")
        parser.add_argument("--name", default="cli token")
        parser.add_argument("--role", choices=[r.value for r in Role], default=Role.VIEWER)

    def handle(self, *args, organisation, name, role, **options):
        org = organisation_by_reference(organisation)
        if org is None:
            raise CommandError(f"No organisation with slug or id {organisation!r}.")
        _, raw = api_token_create(organisation=org, name=name, role=role)
        self.stderr.write(f"Token {name!r} ({role}) for {org.slug}; it will not be shown again:")
        self.stdout.write(raw)
