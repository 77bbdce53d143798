"""Forms of the onboarding pages: projects, environments, databases and members.

They parse what a person typed; the rules are ``organizations.services``' (the API's
serializers end there too), so a form only maps a service's ``InvalidInput`` onto its own
fields (``apply_errors``). Every field's errors and help text are named by its input's
``aria-describedby`` (``DescribedBoundField``), matching the ids ``includes/field.html``
gives them.
"""

from __future__ import annotations

from django import forms
from django.forms.boundfield import BoundField

from config.errors import InvalidInput
from organizations.models import Engine, Role
from organizations.services import FIELD_MAX, NAME_MAX, SLUG_MAX


def describing_ids(field: BoundField) -> list[str]:
    """The ids of a field's help text and of each of its errors, as
    ``includes/field.html`` gives them: what its input's ``aria-describedby`` names."""
    if not field.auto_id:
        return []
    ids = [f"{field.auto_id}_helptext"] if field.help_text else []
    return ids + [f"{field.auto_id}_error_{n}" for n in range(1, len(field.errors) + 1)]


class DescribedBoundField(BoundField):
    """A field whose input points at its help text and at each of its errors, however the
    template renders it."""

    def build_widget_attrs(self, attrs, widget=None):
        attrs = super().build_widget_attrs(attrs, widget)
        if ids := describing_ids(self):
            attrs["aria-describedby"] = " ".join(ids)
        return attrs


class DescribedForm(forms.Form):
    """A form whose errors are linked to their fields, and which takes a service's."""

    bound_field_class = DescribedBoundField
    # Service field name -> this form's field, where they differ.
    service_fields: dict[str, str] = {}

    def apply_errors(self, error: InvalidInput) -> None:
        """Show a service's ``InvalidInput`` on the fields it names (else on the form)."""
        if not error.fields:
            self.add_error(None, error.message)
            return
        for field, problems in error.fields.items():
            name = self.service_fields.get(field, field)
            for problem in problems:
                self.add_error(name if name in self.fields else None, problem)


SLUG_HELP = "Used in URLs and backup names; left empty, it is made from the name."


class ProjectForm(DescribedForm):
    name = forms.CharField(max_length=NAME_MAX, help_text="For example “Shop” or “Billing”.")
    slug = forms.SlugField(max_length=SLUG_MAX, required=False, help_text=SLUG_HELP)

    def service_values(self) -> dict:
        values = {"name": self.cleaned_data["name"]}
        if self.cleaned_data["slug"]:
            values["slug"] = self.cleaned_data["slug"]
        return values


class EnvironmentForm(ProjectForm):
    files_path = forms.CharField(
        label="Files directory",
        max_length=FIELD_MAX["files_path"],
        required=False,
        help_text="A server directory whose files are backed up too (optional); it must be "
        "in the organisation's own directory or one granted to it.",
    )

    def service_values(self) -> dict:
        return {**super().service_values(), "files_path": self.cleaned_data["files_path"]}


class DatabaseForm(ProjectForm):
    """A database's engine and connection. The password is write-only: it is never shown,
    and on an edit an empty password keeps the stored one (``clear_password`` removes it)."""

    engine = forms.ChoiceField(choices=Engine.choices, initial=Engine.POSTGRESQL)
    host = forms.CharField(
        max_length=FIELD_MAX["host"],
        required=False,
        help_text="Server name or address; empty for the local socket (SQLite: leave empty).",
    )
    port = forms.IntegerField(min_value=1, max_value=65535, required=False)
    username = forms.CharField(max_length=FIELD_MAX["username"], required=False)
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again.",
    )
    clear_password = forms.BooleanField(label="Remove the stored password", required=False)
    database_name = forms.CharField(
        label="Database name",
        max_length=FIELD_MAX["database_name"],
        help_text="The database's name on the server; for SQLite, the file's path.",
    )

    field_order = ["name", "engine", "host", "port", "username", "password", "database_name"]

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.editing = editing
        if editing:
            self.fields[
                "password"
            ].help_text = "Leave empty to keep the stored password. Stored encrypted, never shown."
        else:
            del self.fields["clear_password"]

    def service_values(self) -> dict:
        data = self.cleaned_data
        values = {
            **super().service_values(),
            "engine": data["engine"],
            "host": data["host"],
            "port": data["port"],
            "username": data["username"],
            "database_name": data["database_name"],
        }
        if data["password"]:
            values["password"] = data["password"]
        elif self.editing and data.get("clear_password"):
            values["password"] = ""
        elif not self.editing:
            values["password"] = ""
        return values


class MemberAddForm(DescribedForm):
    user = forms.CharField(
        label="Username or email", max_length=254, help_text="Someone who already has an account."
    )
    role = forms.ChoiceField(
        choices=Role.choices,
        initial=Role.VIEWER,
        help_text="Viewers see; operators also back up and restore; admins manage everything.",
    )

    service_fields = {"user_reference": "user"}


class MemberRoleForm(DescribedForm):
    role = forms.ChoiceField(choices=Role.choices)
