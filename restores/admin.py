from django.contrib import admin

from restores.models import Restore


@admin.register(Restore)
class RestoreAdmin(admin.ModelAdmin):
    list_display = [
        "backup",
        "source_environment",
        "target_environment",
        "status",
        "pitr_target",
        "requested_by",
        "created_at",
        "completed_at",
    ]
    list_filter = ["status", "target_type", "organisation"]
    search_fields = ["backup__name", "target_environment__name", "message"]
    readonly_fields = [f.name for f in Restore._meta.fields]
