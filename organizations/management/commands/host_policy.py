from django.core.management.base import BaseCommand, CommandError

from config.errors import InvalidInput
from organizations.hostpolicy import default_rules
from organizations.models import HostPolicy
from organizations.services import host_policy_set
from organizations.tenancy import organisation_by_reference


class Command(BaseCommand):
    help = (
        "Show or change the hosts an organisation's databases, S3 endpoints and webhooks may "
        "reach. --allow adds entries (10.0.0.0/8, db.example.com, *.example.com, *), --remove "
        "drops them, --clear empties the policy first (back to STRONGBOX_DEFAULT_ALLOWED_HOSTS)."
    )

    def add_arguments(self, parser):
        parser.add_argument("organisation", help="Organisation slug or id")
        parser.add_argument("--allow", action="append", default=[], metavar="ENTRY")
        parser.add_argument("--remove", action="append", default=[], metavar="ENTRY")
        parser.add_argument("--clear", action="store_true")

    def handle(self, *args, organisation, allow, remove, clear, **options):
        org = organisation_by_reference(organisation)
        if org is None:
            raise CommandError(f"No organisation with slug or id {organisation!r}.")
        policy = HostPolicy.objects.filter(organisation=org).first()
        entries = [] if clear or policy is None else list(policy.allowed_hosts)
        if allow or remove or clear:
            entries = [entry for entry in entries + allow if entry not in set(remove)]
            try:
                policy = host_policy_set(organisation=org, allowed_hosts=entries)
            except InvalidInput as exc:
                raise CommandError(exc.message) from exc
        self._show(org, policy.allowed_hosts if policy else [])

    def _show(self, org, entries):
        if entries:
            self.stdout.write(f"{org.slug} may reach: {', '.join(entries)}")
            return
        default = default_rules().entries
        where = ", ".join(default) if default else "any host"
        self.stdout.write(f"{org.slug} follows the server default: {where}")
        self.stdout.write("(link-local and cloud metadata addresses are always refused)")
