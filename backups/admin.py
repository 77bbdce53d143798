from django.contrib import admin, messages
from django_q.tasks import async_task

from backups.models import (
    Backup,
    BackupCopy,
    BackupStatus,
    BaseBackupPosition,
    WalArchiver,
    WalSegment,
)
from backups.services import backup_request
from config.errors import ApplicationError


class BackupCopyInline(admin.TabularInline):
    model = BackupCopy
    extra = 0
    can_delete = False
    fields = [
        "destination",
        "key",
        "status",
        "size",
        "file_exists",
        "last_verified_at",
        "locked_until",
        "error",
    ]
    readonly_fields = fields


@admin.register(Backup)
class BackupAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "status",
        "kind",
        "engine",
        "environment",
        "size",
        "trigger",
        "created_at",
        "completed_at",
        "verified_at",
    ]
    list_filter = ["status", "kind", "engine", "trigger", "organisation"]
    search_fields = ["name", "description", "message", "environment__name", "database__name"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Backup._meta.fields]
    inlines = [BackupCopyInline]
    actions = ["back_up_again_now", "verify", "retry_failed"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Back up the same database/environment now")
    def back_up_again_now(self, request, queryset):
        self._request_like(request, queryset)

    @admin.action(description="Retry the selected failed backups")
    def retry_failed(self, request, queryset):
        self._request_like(request, queryset.filter(status=BackupStatus.FAILED))

    def _request_like(self, request, queryset):
        count = 0
        for backup in queryset.select_related("environment", "database"):
            try:
                backup_request(
                    environment=backup.environment,
                    kind=backup.kind,
                    database=backup.database,
                    user=request.user,
                    description=f"Requested from the admin (like {backup.name})",
                )
                count += 1
            except ApplicationError as exc:
                messages.error(request, f"{backup.name}: {exc.message}")
        if count:
            messages.success(request, f"{count} backup(s) requested.")

    @admin.action(description="Verify the selected backups' stored copies")
    def verify(self, request, queryset):
        for backup in queryset.filter(status=BackupStatus.COMPLETED):
            async_task("backups.tasks.verify_backup", str(backup.id))
        messages.success(request, "Verification requested; results appear on each backup.")


@admin.register(BackupCopy)
class BackupCopyAdmin(admin.ModelAdmin):
    list_display = ["backup", "destination", "status", "size", "file_exists", "last_verified_at"]
    list_filter = ["status", "file_exists", "destination"]
    search_fields = ["backup__name", "key"]
    readonly_fields = [f.name for f in BackupCopy._meta.fields]


@admin.register(WalSegment)
class WalSegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "database", "timeline", "size", "stored_size", "base_backup"]
    list_filter = ["kind", "organisation", "database"]
    search_fields = ["name", "database__name"]
    readonly_fields = [f.name for f in WalSegment._meta.fields]


@admin.register(WalArchiver)
class WalArchiverAdmin(admin.ModelAdmin):
    list_display = [
        "database",
        "last_archived_wal",
        "last_archived_at",
        "last_failed_wal",
        "consecutive_failures",
        "archived_count",
    ]
    search_fields = ["database__name", "last_archived_wal", "last_error"]
    readonly_fields = [f.name for f in WalArchiver._meta.fields]


@admin.register(BaseBackupPosition)
class BaseBackupPositionAdmin(admin.ModelAdmin):
    list_display = ["backup", "timeline", "start_wal", "start_time", "stop_wal", "stop_time"]
    search_fields = ["backup__name", "start_wal", "stop_wal"]
    readonly_fields = [f.name for f in BaseBackupPosition._meta.fields]
