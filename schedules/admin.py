from django.contrib import admin

from schedules.models import IntervalRule, Schedule


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
