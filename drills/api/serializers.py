"""The drill resource and the drill policy (seed 003's style: camelCase, UTC timestamps)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.base.strict import StrictInputSerializer
from drills.models import DrillStatus


class DrillRowCountsSerializer(serializers.Serializer):
    expected = serializers.IntegerField(
        allow_null=True, help_text="Rows the backup recorded, every table together."
    )
    restored = serializers.IntegerField(
        allow_null=True, help_text="Rows the throwaway database answered with."
    )


class DrillSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    backupId = serializers.UUIDField(source="backup_id", allow_null=True)  # noqa: N815
    status = serializers.ChoiceField(choices=DrillStatus.choices)
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)  # noqa: N815
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)  # noqa: N815
    rtoSeconds = serializers.FloatField(  # noqa: N815
        source="rto_seconds",
        allow_null=True,
        help_text="Recovery time: from the start of the drill to a database answering "
        "queries with all its rows.",
    )
    rowCounts = serializers.SerializerMethodField()  # noqa: N815
    message = serializers.CharField()

    @extend_schema_field(DrillRowCountsSerializer)
    def get_rowCounts(self, obj) -> dict:  # noqa: N802
        return {"expected": obj.expected_rows, "restored": obj.restored_rows}


class DrillRequestSerializer(StrictInputSerializer):
    backupId = serializers.UUIDField(  # noqa: N815
        required=False,
        allow_null=True,
        help_text="The backup to drill (a completed backup of this database); default: the "
        "newest completed one.",
    )


class DrillPolicySerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    cron = serializers.CharField()
    frequency = serializers.CharField()
    timezone = serializers.CharField()
    targetHost = serializers.CharField(source="target_host")  # noqa: N815
    targetPort = serializers.IntegerField(source="target_port", allow_null=True)  # noqa: N815
    targetUsername = serializers.CharField(source="target_username")  # noqa: N815
    hasTargetPassword = serializers.SerializerMethodField()  # noqa: N815
    namePrefix = serializers.CharField(source="name_prefix")  # noqa: N815
    rtoObjectiveSeconds = serializers.IntegerField(  # noqa: N815
        source="rto_objective_seconds", allow_null=True
    )
    nextRunAt = serializers.SerializerMethodField()  # noqa: N815

    def get_hasTargetPassword(self, obj) -> bool:  # noqa: N802
        return bool(obj.target_password)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_nextRunAt(self, obj):  # noqa: N802
        if not obj.enabled:
            return None
        run = obj.next_run(self.context["now"])
        return serializers.DateTimeField().to_representation(run) if run else None


class DrillPolicyWriteSerializer(StrictInputSerializer):
    enabled = serializers.BooleanField(required=False)
    cron = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="e.g. '0 3 * * 0'"
    )
    frequency = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=30,
        help_text="hourly, every-6-hours, every-12-hours, daily, weekly or monthly",
    )
    timezone = serializers.CharField(required=False, max_length=64, help_text="IANA name")
    targetHost = serializers.CharField(  # noqa: N815
        required=False,
        allow_blank=True,
        max_length=255,
        help_text="The drill server; empty: the source database's own server.",
    )
    targetPort = serializers.IntegerField(  # noqa: N815
        required=False, allow_null=True, min_value=1, max_value=65535
    )
    targetUsername = serializers.CharField(  # noqa: N815
        required=False, allow_blank=True, max_length=200
    )
    targetPassword = serializers.CharField(  # noqa: N815
        required=False,
        allow_null=True,
        allow_blank=True,
        write_only=True,
        max_length=1000,
        help_text="Write-only; null or left out keeps the stored one.",
    )
    namePrefix = serializers.CharField(  # noqa: N815
        required=False, max_length=30, help_text="Throwaway databases are <prefix><id>."
    )
    rtoObjectiveSeconds = serializers.IntegerField(  # noqa: N815
        required=False, allow_null=True, min_value=1, max_value=10**9
    )

    DOMAIN_NAMES = {
        "targetHost": "target_host",
        "targetPort": "target_port",
        "targetUsername": "target_username",
        "targetPassword": "target_password",
        "namePrefix": "name_prefix",
        "rtoObjectiveSeconds": "rto_objective_seconds",
    }

    def domain_fields(self) -> dict:
        return {self.DOMAIN_NAMES.get(k, k): v for k, v in self.validated_data.items()}
