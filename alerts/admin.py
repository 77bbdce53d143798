from django import forms
from django.contrib import admin
from django.db import transaction
from django.utils import timezone

from alerts.models import Alert, NotificationChannel, NotificationDelivery
from alerts.services import (
    channel_audit,
    channel_audit_values,
    notification_channel_delete,
    notification_channel_validate,
)
from config.errors import InvalidInput


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "kind",
        "severity",
        "organisation",
        "occurrences",
        "last_seen_at",
        "read_at",
        "dismissed_at",
        "resolved_at",
    ]
    list_filter = ["kind", "severity", "organisation", ("dismissed_at", admin.EmptyFieldListFilter)]
    search_fields = ["title", "message"]
    readonly_fields = ["first_seen_at", "last_seen_at", "occurrences", "dedup_key"]
    actions = ["dismiss"]

    @admin.action(description="Dismiss the selected alerts")
    def dismiss(self, request, queryset):
        queryset.filter(dismissed_at__isnull=True).update(dismissed_at=timezone.now())


CHANNEL_FIELDS = [
    "organisation",
    "name",
    "kind",
    "url",
    "recipients",
    "secret",
    "events",
    "min_severity",
    "send_resolved",
    "enabled",
]


class NotificationChannelAdminForm(forms.ModelForm):
    # The URL and the secret are write-only here too: left blank on edit, they are kept.
    url = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the stored URL (webhook or apprise; stored encrypted).",
    )
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Webhook HMAC key; leave blank to keep.",
    )

    class Meta:
        model = NotificationChannel
        fields = CHANNEL_FIELDS

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        channel = self.instance
        for field in CHANNEL_FIELDS:
            if field in ("url", "secret") and not cleaned.get(field) and channel.pk:
                continue  # kept
            value = cleaned.get(field) if field in cleaned else ""
            if field in ("events", "recipients") and not value:
                value = []  # a blank list field is an empty list, not None
            setattr(channel, field, value)
        try:
            notification_channel_validate(channel=channel)
        except InvalidInput as exc:
            for field, messages in exc.fields.items():
                for message in messages:
                    self.add_error(field if field in self.fields else None, message)
        return cleaned

    def _post_clean(self):
        # clean() has put every value on the instance; the model form must not blank the
        # kept secrets again.
        pass


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = NotificationChannelAdminForm
    list_display = [
        "name",
        "kind",
        "organisation",
        "enabled",
        "last_delivery_at",
        "last_delivery_ok",
        "consecutive_failures",
    ]
    list_filter = ["kind", "enabled", "organisation"]
    search_fields = ["name"]
    readonly_fields = ["last_delivery_at", "last_delivery_ok", "last_delivery_error"]

    # The form checked the channel with the services' rules; the audit log records it the
    # same way as the API and the pages do.
    def save_model(self, request, obj, form, change):
        before = (
            channel_audit_values(NotificationChannel.objects.get(pk=obj.pk)) if change else None
        )
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            channel_audit(
                channel=obj,
                action="channel.update" if change else "channel.create",
                before=before,
                secret_changed=change and bool(form.cleaned_data.get("secret")),
            )

    def delete_model(self, request, obj):
        notification_channel_delete(channel=obj)

    def delete_queryset(self, request, queryset):
        for channel in queryset:
            notification_channel_delete(channel=channel)


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = ["alert", "channel", "event", "attempt", "status_code", "ok", "created_at"]
    list_filter = ["ok", "event", "channel__kind"]
    search_fields = ["alert__title", "channel__name", "error"]
    readonly_fields = [f.name for f in NotificationDelivery._meta.fields]
