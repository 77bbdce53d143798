"""Forms of the backup pages. Filtering itself is ``BackupFilterSet``'s job; the list
form only turns what a person types (plain dates) into its canonical parameters."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from backups.models import BackupKind, BackupStatus

KIND_CHOICES = [
    ("", "Any kind"),
    ("database", "Database"),
    ("full", "Full (databases and files)"),
    ("filesystem", "Files"),
]


class BackupListFilterForm(forms.Form):
    search = forms.CharField(
        required=False,
        max_length=200,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Backup or database name"}),
    )
    status = forms.ChoiceField(
        choices=[("", "Any status but deleted"), *BackupStatus.choices],
        required=False,
        label="Status",
    )
    kind = forms.ChoiceField(choices=KIND_CHOICES, required=False, label="Kind")
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filter_params(self) -> dict[str, str]:
        """The canonical ``BackupFilterSet`` parameters of a valid form.

        Dates are whole days in the server's timezone: ``to`` includes its whole day.
        """
        data = self.cleaned_data
        params: dict[str, str] = {}
        if data.get("status"):
            params["status"] = data["status"]
        if data.get("kind"):
            params["kind"] = data["kind"]
        zone = timezone.get_current_timezone()
        if data.get("date_from"):
            start = datetime.combine(data["date_from"], time.min, tzinfo=zone)
            params["created_after"] = (start - timedelta(microseconds=1)).isoformat()
        if data.get("date_to"):
            end = datetime.combine(data["date_to"] + timedelta(days=1), time.min, tzinfo=zone)
            params["created_before"] = end.isoformat()
        return params


class BackupTriggerForm(forms.Form):
    """What "Back up now" backs up; only kinds the environment can take are offered."""

    kind = forms.ChoiceField(label="What to back up")

    def __init__(self, *args, environment, **kwargs):
        super().__init__(*args, **kwargs)
        choices = []
        if environment.databases.exists():
            choices.append((BackupKind.DATABASE, "Databases"))
        if environment.files_path:
            choices.append((BackupKind.FILESYSTEM, "Files"))
        if len(choices) == 2:
            choices.append((BackupKind.FULL, "Databases and files (full)"))
        schedule = getattr(environment, "schedule", None)
        if (
            schedule is not None
            and schedule.wal_enabled
            and environment.databases.filter(engine="postgresql").exists()
        ):
            # The point-in-time recovery card's "Take a base backup now" posts this kind.
            choices.append((BackupKind.BASE, "PostgreSQL base backup (point-in-time recovery)"))
        self.fields["kind"].choices = choices
        if choices:
            self.fields["kind"].initial = choices[0][0]


class AgeSettingsForm(forms.Form):
    """The organisation's age recipients (one a line) and, optionally, its identity."""

    recipients = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="age1… public keys, one a line. New backups are encrypted to these (and to "
        "the installation's); existing ones keep theirs until re-wrapped.",
    )
    identity = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="AGE-SECRET-KEY-1… (write-only, stored encrypted): lets this installation "
        "restore. Leave empty to keep the current one.",
    )
    remove_identity = forms.BooleanField(required=False, label="Remove the stored identity")
