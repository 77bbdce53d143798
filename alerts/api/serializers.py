from rest_framework import serializers

from alerts.models import AlertKind, Severity


class Seed003AlertSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.ChoiceField(source="kind", choices=AlertKind.choices)
    severity = serializers.ChoiceField(choices=Severity.choices)
    title = serializers.CharField()
    message = serializers.CharField()
    environmentId = serializers.UUIDField(source="environment_id", allow_null=True)  # noqa: N815
    backupId = serializers.UUIDField(source="backup_id", allow_null=True)  # noqa: N815
    restoreId = serializers.UUIDField(source="restore_id", allow_null=True)  # noqa: N815
    occurrences = serializers.IntegerField()
    read = serializers.SerializerMethodField()
    dismissed = serializers.SerializerMethodField()
    resolved = serializers.SerializerMethodField()
    firstSeenAt = serializers.DateTimeField(source="first_seen_at")  # noqa: N815
    lastSeenAt = serializers.DateTimeField(source="last_seen_at")  # noqa: N815
    readAt = serializers.DateTimeField(source="read_at", allow_null=True)  # noqa: N815
    dismissedAt = serializers.DateTimeField(source="dismissed_at", allow_null=True)  # noqa: N815
    resolvedAt = serializers.DateTimeField(source="resolved_at", allow_null=True)  # noqa: N815

    def get_read(self, obj) -> bool:
        return obj.read_at is not None

    def get_dismissed(self, obj) -> bool:
        return obj.dismissed_at is not None

    def get_resolved(self, obj) -> bool:
        return obj.resolved_at is not None


class Seed003AlertCountSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Alerts neither read nor dismissed.")
