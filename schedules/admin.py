from django.contrib import admin

from schedules.models import IntervalRule, Schedule
from schedules.services import schedule_audited_values, schedule_record_change


class IntervalRuleInline(admin.TabularInline):
    model = IntervalRule
    extra = 0


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = [
        "environment",
        "db_cron",
        "full_cron",
        "timezone",
        "enabled",
        "paused",
        "wal_enabled",
    ]
    list_filter = ["enabled", "paused", "wal_enabled", "environment__project__organisation"]
    search_fields = ["environment__name", "environment__project__name"]
    filter_horizontal = ["destinations"]
    inlines = [IntervalRuleInline]

    # Recorded in the audit log once the destinations and rules are saved too.
    def save_model(self, request, obj, form, change):
        self._audit_before = (
            schedule_audited_values(Schedule.objects.get(pk=obj.pk)) if change else {}
        )
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        schedule_record_change(
            schedule=form.instance, before=self._audit_before, created=not change
        )
