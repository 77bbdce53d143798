from django import forms
from django.contrib import admin, messages
from django_q.tasks import async_task

from backups.models import (
    AgeKeys,
    Backup,
    BackupCopy,
    BackupStatus,
    BaseBackupPosition,
    WalArchiver,
    WalSegment,
)
from backups.services import age_keys_checked, age_keys_update, backup_request
from config.errors import ApplicationError, InvalidInput


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


class AgeKeysForm(forms.ModelForm):
    """Recipients one a line; the identity write-only. Checked by ``age_keys_update``."""

    recipients_text = forms.CharField(
        label="Recipients",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="age1… public keys, one a line.",
    )
    new_identity = forms.CharField(
        label="Identity",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="AGE-SECRET-KEY-1… lines; stored encrypted, never shown. Leave empty to "
        "keep the current one.",
    )
    remove_identity = forms.BooleanField(required=False)

    class Meta:
        model = AgeKeys
        fields = ["organisation"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["recipients_text"].initial = "\n".join(self.instance.recipients)
            self.fields["organisation"].disabled = True

    def identity_given(self) -> str | None:
        if self.cleaned_data.get("remove_identity"):
            return ""
        return self.cleaned_data.get("new_identity") or None

    def clean(self):
        cleaned = super().clean()
        try:
            age_keys_checked(
                recipients=cleaned.get("recipients_text", "").split(),
                identity=self.identity_given(),
            )
        except InvalidInput as exc:
            for field, problems in exc.fields.items():
                target = {"recipients": "recipients_text", "identity": "new_identity"}[field]
                for problem in problems:
                    self.add_error(target, problem)
        return cleaned


@admin.register(AgeKeys)
class AgeKeysAdmin(admin.ModelAdmin):
    form = AgeKeysForm
    list_display = ["organisation", "recipient_count", "has_identity", "updated_at"]
    fields = ["organisation", "recipients_text", "new_identity", "remove_identity"]

    @admin.display(description="recipients")
    def recipient_count(self, keys: AgeKeys) -> int:
        return len(keys.recipients)

    @admin.display(boolean=True, description="identity")
    def has_identity(self, keys: AgeKeys) -> bool:
        return bool(keys.identity)

    def save_model(self, request, obj, form, change):
        # Through the service, as the API and the page write it.
        keys = age_keys_update(
            organisation=obj.organisation,
            recipients=form.cleaned_data.get("recipients_text", "").split(),
            identity=form.identity_given(),
        )
        obj.pk = keys.pk  # the admin's redirect and log name the saved row
