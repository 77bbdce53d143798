from django import forms
from django.contrib import admin
from django.utils import timezone

from alerts.models import Alert, NotificationChannel, NotificationDelivery
from audit.services import AuditObject, audit_record, changes, url_shown
from organizations.hostpolicy import url_problem


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


class NotificationChannelAdminForm(forms.ModelForm):
    class Meta:
        model = NotificationChannel
        fields = ["organisation", "kind", "target", "secret", "enabled"]

    def clean(self):
        cleaned = super().clean()
        organisation, target = cleaned.get("organisation"), cleaned.get("target")
        if cleaned.get("kind") == NotificationChannel.Kind.WEBHOOK and organisation and target:
            problem = url_problem(organisation, target)
            if problem:
                self.add_error("target", problem)
        return cleaned


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = NotificationChannelAdminForm
    list_display = ["kind", "target", "organisation", "enabled", "created_at"]
    list_filter = ["kind", "enabled", "organisation"]
    search_fields = ["target"]

    # Recorded here until notification channels have services of their own (they should
    # take these three over, with the same actions).
    def save_model(self, request, obj, form, change):
        before = _channel_values(NotificationChannel.objects.get(pk=obj.pk)) if change else {}
        super().save_model(request, obj, form, change)
        details = changes(before, _channel_values(obj))
        if "secret" in form.changed_data:
            details["signing_key_changed"] = True
        if not change or details["before"] or details["after"] or "secret" in form.changed_data:
            audit_record(
                organisation=obj.organisation_id,
                action="channel.update" if change else "channel.create",
                obj=_channel_object(obj),
                details=details,
            )

    def delete_model(self, request, obj):
        audit_record(
            organisation=obj.organisation_id, action="channel.delete", obj=_channel_object(obj)
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for channel in queryset:
            self.delete_model(request, channel)


def _channel_values(channel: NotificationChannel) -> dict:
    return {"kind": channel.kind, "target": url_shown(channel.target), "enabled": channel.enabled}


def _channel_object(channel: NotificationChannel) -> AuditObject:
    return AuditObject("channel", str(channel.pk), f"{channel.kind}: {url_shown(channel.target)}")


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = ["alert", "channel", "attempt", "status_code", "ok", "created_at"]
    list_filter = ["ok", "channel__kind"]
    search_fields = ["alert__title", "channel__target", "error"]
