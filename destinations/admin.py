import json

from django import forms
from django.contrib import admin
from django.db import transaction

from destinations import services
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

    # The admin saves the row itself (its form checks the same rules); the audit log
    # records it as the services do.
    def save_model(self, request, obj, form, change):
        old = Destination.objects.get(pk=obj.pk) if change else None
        before = services.destination_audited_values(old) if old else {}
        old_secrets = old.secrets if old else {}
        super().save_model(request, obj, form, change)
        if not change:
            services.destination_record_created(destination=obj)
            return
        changed = [
            key
            for key in {*old_secrets, *obj.secrets}
            if old_secrets.get(key) != obj.secrets.get(key)
        ]
        services.destination_record_change(
            destination=obj, before=before, sensitive_changed=changed
        )

    def delete_model(self, request, obj):
        with transaction.atomic():
            services.destination_record_deleted(destination=obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for destination in queryset:
            self.delete_model(request, destination)
