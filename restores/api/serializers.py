from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from backups.api.dialects.seed003 import Seed003RefSerializer
from backups.api.sse import restore_progress_event
from restores.models import RestoreStatus


class Seed003RestoreRequestSerializer(serializers.Serializer):
    backupId = serializers.UUIDField(  # noqa: N815
        required=False, help_text="The backup to restore; must match the path when given."
    )
    targetType = serializers.ChoiceField(  # noqa: N815
        choices=["same", "other", "new"],
        default="same",
        help_text='"same" or "other" ("new" is disabled until orchestration exists)',
    )
    targetEnvironmentId = serializers.UUIDField(  # noqa: N815
        required=False, allow_null=True, help_text='required if targetType="other"'
    )
    pitrTimestamp = serializers.DateTimeField(  # noqa: N815
        required=False, allow_null=True, help_text="optional point-in-time recovery target"
    )
    newEnvironmentName = serializers.CharField(  # noqa: N815
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=200,
        help_text='reserved for disabled targetType="new"',
    )


class Seed003RestoreSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    backupId = serializers.UUIDField(source="backup_id")  # noqa: N815
    backupName = serializers.CharField(source="backup.name")  # noqa: N815
    sourceEnvironment = Seed003RefSerializer(source="source_environment")  # noqa: N815
    targetEnvironment = Seed003RefSerializer(source="target_environment")  # noqa: N815
    targetDatabaseId = serializers.UUIDField(source="target_database_id", allow_null=True)  # noqa: N815
    targetType = serializers.CharField(source="target_type")  # noqa: N815
    pitrTimestamp = serializers.DateTimeField(source="pitr_target", allow_null=True)  # noqa: N815
    status = serializers.ChoiceField(choices=RestoreStatus.choices)
    phase = serializers.CharField()
    bytesDone = serializers.IntegerField(source="bytes_done")  # noqa: N815
    bytesTotal = serializers.IntegerField(source="bytes_total", allow_null=True)  # noqa: N815
    percent = serializers.SerializerMethodField()
    message = serializers.CharField()
    safetyBackupId = serializers.UUIDField(source="safety_backup_id", allow_null=True)  # noqa: N815
    requestedBy = serializers.SerializerMethodField()  # noqa: N815
    createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)  # noqa: N815
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)  # noqa: N815

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_percent(self, obj):
        return restore_progress_event(obj)["percent"]

    def get_requestedBy(self, obj) -> str | None:  # noqa: N802
        return obj.requested_by.get_username() if obj.requested_by_id else None


class Seed003PitrCoverageSerializer(serializers.Serializer):
    """The planned answer of ``GET /api/environments/{env_id}/pitr`` (501 until WAL lands)."""

    walEnabled = serializers.BooleanField()  # noqa: N815
    walRetentionDays = serializers.IntegerField(allow_null=True)  # noqa: N815
    coverageStart = serializers.DateTimeField(allow_null=True)  # noqa: N815
    coverageEnd = serializers.DateTimeField(allow_null=True)  # noqa: N815
    baseBackupId = serializers.UUIDField(allow_null=True)  # noqa: N815
    lastArchivedAt = serializers.DateTimeField(allow_null=True)  # noqa: N815
