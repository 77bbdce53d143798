from django import forms
from django.contrib import admin
from django.utils import timezone

from alerts.models import Alert, NotificationChannel, NotificationDelivery
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


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = ["alert", "channel", "attempt", "status_code", "ok", "created_at"]
    list_filter = ["ok", "channel__kind"]
    search_fields = ["alert__title", "channel__target", "error"]
