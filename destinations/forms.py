"""The destination form: name, kind and the chosen backend's declared parameters.

Each backend's parameters become fields named ``<kind>__<parameter>``; sensitive ones
are password inputs that are never filled back in (leave blank to keep on edit).
Validation is ``destinations.services``'s; its errors come back next to the fields.
"""

from __future__ import annotations

from django import forms

from destinations.backends import BACKENDS
from destinations.models import DestinationKind


def _field_name(kind: str, parameter: str) -> str:
    return f"{kind}__{parameter}"


class DestinationForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=DestinationKind.choices, label="Kind")
    is_default = forms.BooleanField(
        required=False,
        label="Default destination",
        help_text="Used by manual backups that name no destination.",
    )

    def __init__(self, *args, destination=None, **kwargs):
        self.destination = destination
        if destination is not None:
            initial = kwargs.setdefault("initial", {})
            initial.update(
                name=destination.name, kind=destination.kind, is_default=destination.is_default
            )
            for key, value in destination.config.items():
                initial[_field_name(destination.kind, key)] = value
        super().__init__(*args, **kwargs)
        if destination is not None:
            self.fields["kind"].disabled = True
            self.fields["kind"].help_text = "The kind of a destination cannot change."
        for kind, backend in BACKENDS.items():
            for parameter in backend.parameters:
                sensitive = parameter.name in backend.sensitive_parameters
                help_text = parameter.help
                if sensitive and destination is not None:
                    help_text = (help_text + " " if help_text else "") + "Leave blank to keep."
                self.fields[_field_name(kind, parameter.name)] = forms.CharField(
                    label=parameter.name.replace("_", " ").capitalize(),
                    required=False,
                    help_text=help_text,
                    widget=forms.PasswordInput(render_value=False) if sensitive else None,
                )
                self.fields[_field_name(kind, parameter.name)].parameter = parameter
                self.fields[_field_name(kind, parameter.name)].backend_kind = kind

    def kind_groups(self) -> list[dict]:
        """Per kind: its label and its parameter fields, for one fieldset each."""
        return [
            {
                "kind": kind,
                "label": DestinationKind(kind).label,
                "fields": [self[_field_name(kind, p.name)] for p in backend.parameters],
            }
            for kind, backend in BACKENDS.items()
        ]

    def parameters(self) -> dict[str, str | None]:
        """The chosen kind's parameters; on edit, blank sensitive ones are left out (kept)."""
        kind = self.cleaned_data["kind"]
        backend = BACKENDS[kind]
        values: dict[str, str | None] = {}
        for parameter in backend.parameters:
            value = self.cleaned_data.get(_field_name(kind, parameter.name), "")
            sensitive = parameter.name in backend.sensitive_parameters
            if self.destination is not None and sensitive and not value:
                continue
            values[parameter.name] = value or None
        return values

    def add_service_errors(self, fields: dict, message: str) -> None:
        kind = self.cleaned_data.get("kind")
        placed = False
        for name, messages in fields.items():
            target = name
            if name.startswith("parameters."):
                target = _field_name(kind, name.split(".", 1)[1])
            if target not in self.fields:
                continue
            for text in messages:
                self.add_error(target, text)
                placed = True
        if not placed:
            self.add_error(None, message)
