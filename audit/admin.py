"""The audit log in the Django admin: read-only (no add, change or delete, superusers
included), filterable by organisation, action, actor type and outcome."""

from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "at",
        "organisation",
        "actor_type",
        "actor_name",
        "action",
        "object_type",
        "object_name",
        "ip",
        "outcome",
    )
    list_filter = ("action", "actor_type", "outcome", "organisation")
    search_fields = ("actor_name", "object_name", "object_id", "ip")
    date_hierarchy = "at"
    list_select_related = ("organisation",)
    readonly_fields = [field.name for field in AuditEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
