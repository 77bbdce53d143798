from django.contrib import admin, messages

from config.errors import ApplicationError
from restores.models import Restore
from restores.services import restore_undo


@admin.register(Restore)
class RestoreAdmin(admin.ModelAdmin):
    list_display = [
        "backup",
        "source_environment",
        "target_environment",
        "status",
        "phase",
        "pitr_target",
        "safety_backup",
        "requested_by",
        "created_at",
        "completed_at",
    ]
    list_filter = ["status", "target_type", "organisation"]
    search_fields = ["backup__name", "target_environment__name", "message"]
    readonly_fields = [f.name for f in Restore._meta.fields]
    actions = ["undo"]

    @admin.action(description="Undo: restore the safety backup taken before it")
    def undo(self, request, queryset):
        for restore in queryset:
            try:
                undo = restore_undo(restore=restore, user=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{restore}: {exc.message}", messages.ERROR)
                continue
            self.message_user(request, f"{restore}: undo {undo.id} scheduled.", messages.SUCCESS)
