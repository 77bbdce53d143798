"""The notification channel form. Its checks are ``alerts.services``' (per kind, host
policy); their errors come back next to the fields. The URL and the secret are never filled
back in: left blank on edit, they are kept."""

from __future__ import annotations

import re

from django import forms

from alerts.models import AlertKind, NotificationChannel, Severity


class NotificationChannelForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=NotificationChannel.Kind.choices)
    url = forms.CharField(
        label="URL",
        required=False,
        max_length=2000,
        help_text="Apprise: slack://…, discord://…, tgram://…, ntfys://host/topic, "
        "mailto://…, json://host/path. Webhook: its https:// URL. Stored encrypted.",
    )
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False),
        help_text="Webhook only: the HMAC key of the X-Strongbox-Signature header.",
    )
    recipients = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Email only: one address per line (or separated by commas).",
    )
    events = forms.MultipleChoiceField(
        label="Alert kinds",
        required=False,
        choices=AlertKind.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every kind.",
    )
    min_severity = forms.ChoiceField(
        label="Minimum severity", choices=Severity.choices, initial=Severity.INFO
    )
    send_resolved = forms.BooleanField(
        label="Also send a notice when an alert resolves", required=False, initial=True
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, channel: NotificationChannel | None = None, **kwargs):
        self.channel = channel
        if channel is not None:
            kwargs.setdefault("initial", {}).update(
                name=channel.name,
                kind=channel.kind,
                recipients="\n".join(channel.recipients),
                events=channel.events,
                min_severity=channel.min_severity,
                send_resolved=channel.send_resolved,
                enabled=channel.enabled,
            )
        super().__init__(*args, **kwargs)
        if channel is not None:
            self.fields["kind"].disabled = True
            self.fields["kind"].help_text = "The kind of a channel cannot change."
            kept = f"Stored: {channel.masked_url()}. Leave blank to keep it."
            self.fields["url"].help_text = kept if channel.url else self.fields["url"].help_text
            self.fields["secret"].help_text += " Leave blank to keep."

    def values(self) -> dict:
        """The service's arguments; on edit, a blank URL or secret is left out (kept)."""
        data = dict(self.cleaned_data)
        data["recipients"] = [r for r in re.split(r"[\s,;]+", data["recipients"]) if r]
        if self.channel is not None:
            data.pop("kind")
            for secret in ("url", "secret"):
                if not data[secret]:
                    data.pop(secret)
        return data

    def add_service_errors(self, fields: dict, message: str) -> None:
        placed = False
        for name, messages in fields.items():
            target = name.split(".", 1)[0]
            if target in self.fields:
                for text in messages:
                    self.add_error(target, text)
                    placed = True
        if not placed:
            self.add_error(None, message)
