import json

from django import forms
from django.contrib import admin

from destinations.backends import BACKENDS
from destinations.models import Destination
from destinations.services import destination_object_lock_problem
from organizations.validators import PathNotAllowed, require_destination_values


class DestinationAdminForm(forms.ModelForm):
    secrets_input = forms.CharField(
        label="Secret parameters",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='JSON, e.g. {"access_key_id": "…", "secret_access_key": "…"}. '
        "Write-only: leave empty to keep the stored secrets.",
    )

    class Meta:
        model = Destination
        fields = ["organisation", "name", "kind", "config", "is_default"]

    def clean_secrets_input(self):
        raw = self.cleaned_data.get("secrets_input")
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("Give a JSON object.")
        return value

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind in BACKENDS:
            secrets = cleaned.get("secrets_input")
            if secrets is None:
                secrets = self.instance.secrets if self.instance.pk else {}
            problems = BACKENDS[kind].validate(cleaned.get("config") or {}, secrets)
            if problems:
                raise forms.ValidationError(list(problems.values()))
        organisation = cleaned.get("organisation")
        if kind and organisation is not None:
            try:  # the same directory rule as the API's (organizations/validators.py)
                require_destination_values(organisation, kind, cleaned.get("config") or {})
            except PathNotAllowed as exc:
                self.add_error("config", exc.message)
        if kind in BACKENDS and organisation is not None and not self.errors:
            # The API's check too: a bucket without object lock refuses what is asked.
            problem = destination_object_lock_problem(
                organisation=organisation,
                kind=kind,
                config=cleaned.get("config") or {},
                secrets=cleaned.get("secrets_input") or self.instance.secrets or {},
            )
            if problem:
                self.add_error("config", problem)
        return cleaned

    def save(self, commit=True):
        secrets = self.cleaned_data.get("secrets_input")
        if secrets is not None:
            self.instance.secrets = secrets
        return super().save(commit)


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    form = DestinationAdminForm
    list_display = ["name", "kind", "organisation", "is_default", "last_checked_at"]
    list_filter = ["kind", "organisation", "is_default"]
    search_fields = ["name"]
