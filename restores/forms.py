"""The restore form: where to restore, whether to take a safety backup first, and
(for PostgreSQL with WAL archiving) an optional point in time."""

from __future__ import annotations

from django import forms

from organizations.models import Database, Engine, Environment
from restores.plan import PITR_KINDS, engine_label, family


class RestoreForm(forms.Form):
    target_environment = forms.ModelChoiceField(
        queryset=Environment.objects.none(),
        label="Restore into",
        empty_label=None,
        help_text="Its databases (and files) are replaced; nothing changes until the last step.",
    )
    target_database = forms.ModelChoiceField(
        queryset=Database.objects.none(),
        required=False,
        label="Replace the database",
        empty_label="The one of the same name (else the only one of the same engine)",
        help_text="A database of the environment above, of the backup's engine family.",
    )
    take_safety_backup = forms.BooleanField(
        required=False,
        initial=True,
        label="Back up the target first (safety backup, lets you undo)",
    )
    pitr_timestamp = forms.DateTimeField(
        required=False,
        label="Recover to a point in time (optional)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
        input_formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"],
        help_text="In UTC, inside the recoverable window shown above. Leave empty to restore "
        "the backup as it was taken.",
    )
    confirm = forms.BooleanField(
        label="I understand the target’s current data will be replaced",
        error_messages={"required": "Tick this to confirm the restore."},
    )
    confirm_name = forms.CharField(
        required=False,
        max_length=300,
        label="Type the name of what is replaced",
        help_text="Asked when the restore replaces the backup's own environment, or a database "
        "of another name than the backup's: the name shown under “What this restore replaces”.",
    )

    # The service's field names where this form names them otherwise.
    SERVICE_FIELDS = {"target_type": "target_environment"}

    def __init__(self, *args, backup, pitr_available: bool, **kwargs):
        super().__init__(*args, **kwargs)
        environments = Environment.objects.filter(
            project__organisation_id=backup.organisation_id
        ).select_related("project")
        field = self.fields["target_environment"]
        field.queryset = environments.order_by("project__name", "name")
        field.initial = backup.environment_id
        field.label_from_instance = lambda env: (
            f"{env} (same as the backup)" if env.pk == backup.environment_id else str(env)
        )
        source = backup.database
        if backup.kind in PITR_KINDS and source is not None:
            databases = self.fields["target_database"]
            databases.queryset = (
                Database.objects.filter(environment__in=environments)
                .filter(engine__in=[e for e in Engine.values if family(e) == family(source.engine)])
                .select_related("environment__project")
                .order_by("environment__project__name", "environment__name", "name")
            )
            databases.label_from_instance = lambda db: (
                f"{db.environment} · {db.name} ({engine_label(db.engine)})"
            )
        else:
            del self.fields["target_database"]  # a full or files backup goes by name
        if not pitr_available:
            del self.fields["pitr_timestamp"]

    def add_service_errors(self, fields: dict, message: str) -> None:
        placed = False
        for name, messages in fields.items():
            target = self.SERVICE_FIELDS.get(name, name)
            if target in self.fields:
                for text in messages:
                    self.add_error(target, text)
                placed = True
        if not placed or not fields:
            self.add_error(None, message)


def name_to_type(*, backup, target: Environment, plan: dict) -> str:
    """What the user types to confirm a restore that could be a slip, else "": one that
    replaces the backup's own environment (in place: often production), or a database of
    another name than the one backed up. A single database's name, else the environment's."""
    members = plan.get("members") or []
    if not members:
        return ""
    in_place = target.pk == backup.environment_id
    renamed = any(
        m["source"]["name"] and m["source"]["name"] != m["target"]["name"] for m in members
    )
    if not (in_place or renamed):
        return ""
    if len(members) == 1 and members[0]["target"]["database_id"]:
        return members[0]["target"]["name"]
    return target.name
