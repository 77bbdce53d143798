"""Seed 003 schedule bodies. Types are checked here; meaning (cron, timezone,
destinations, rules) in ``schedules.services``."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.base.strict import StrictInputSerializer
from schedules import timing
from schedules.models import RETENTION_FIELDS
from schedules.services import api_name

MAX_RETENTION_VALUE = 100_000


def _retention_fields(*, read_only: bool = False) -> dict:
    return {
        api_name(name): serializers.IntegerField(
            source=name,
            min_value=0,
            # The columns are 32-bit integers on PostgreSQL; a larger count means nothing.
            max_value=MAX_RETENTION_VALUE,
            required=False,
            allow_null=True,
            read_only=read_only,
        )
        for name in RETENTION_FIELDS
    }


class Seed003IntervalRuleSerializer(StrictInputSerializer):
    """A seed 001 schedule rule (``day``: 0 = Monday)."""

    interval = serializers.ChoiceField(choices=["hourly", "daily", "weekly"])
    minute = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=59), min_length=1
    )
    hour = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=23), required=False, allow_null=True
    )
    day = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6), required=False, allow_null=True
    )


_FREQUENCY_HELP = (
    "A preset name (hourly, every-6-hours, every-12-hours, daily, weekly, monthly) that sets "
    "the cron, `custom` (the cron says when) or empty (not scheduled)."
)

Seed003ScheduleInputSerializer = type(
    "Seed003ScheduleInputSerializer",
    (StrictInputSerializer,),
    {
        "__module__": __name__,
        "__doc__": "Every field is optional: a field left out keeps its current value.",
        "dbCron": serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=timing.CRON_MAX_LENGTH,
            help_text="5-field cron for database backups.",
        ),
        "dbFrequency": serializers.CharField(
            required=False, allow_blank=True, help_text=_FREQUENCY_HELP
        ),
        "fullCron": serializers.CharField(
            required=False,
            allow_blank=True,
            max_length=timing.CRON_MAX_LENGTH,
            help_text="5-field cron for full backups.",
        ),
        "fullFrequency": serializers.CharField(
            required=False, allow_blank=True, help_text=_FREQUENCY_HELP
        ),
        "destinationIds": serializers.ListField(
            child=serializers.CharField(), required=False, help_text="Backup destination UUIDs."
        ),
        "enabled": serializers.BooleanField(required=False),
        "paused": serializers.BooleanField(required=False),
        "timezone": serializers.CharField(
            required=False, help_text="IANA timezone the crons run in, e.g. Europe/London."
        ),
        **_retention_fields(),
        "walEnabled": serializers.BooleanField(required=False),
        "walRetentionDays": serializers.IntegerField(
            min_value=1, max_value=MAX_RETENTION_VALUE, required=False, allow_null=True
        ),
        "schedules": Seed003IntervalRuleSerializer(
            many=True,
            required=False,
            help_text="Extension: seed 001 interval rules (one per interval) for database "
            "backups; replaces the current rules.",
        ),
    },
)


class _ScheduleBaseSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    environmentId = serializers.UUIDField(source="environment_id")  # noqa: N815
    dbCron = serializers.CharField(source="db_cron")  # noqa: N815
    dbFrequency = serializers.CharField(source="db_frequency")  # noqa: N815
    fullCron = serializers.CharField(source="full_cron")  # noqa: N815
    fullFrequency = serializers.CharField(source="full_frequency")  # noqa: N815
    destinationIds = serializers.SerializerMethodField()  # noqa: N815
    enabled = serializers.BooleanField()
    paused = serializers.BooleanField()
    timezone = serializers.CharField()
    walEnabled = serializers.BooleanField(source="wal_enabled")  # noqa: N815
    walRetentionDays = serializers.IntegerField(source="wal_retention_days", allow_null=True)  # noqa: N815
    schedules = serializers.SerializerMethodField()
    nextDbRun = serializers.SerializerMethodField()  # noqa: N815
    nextFullRun = serializers.SerializerMethodField()  # noqa: N815
    createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815
    updatedAt = serializers.DateTimeField(source="updated_at")  # noqa: N815

    def get_destinationIds(self, obj) -> list[str]:  # noqa: N802
        return sorted(str(d.pk) for d in obj.destinations.all())

    @extend_schema_field(Seed003IntervalRuleSerializer(many=True))
    def get_schedules(self, obj) -> list[dict]:
        return [rule.as_seed() for rule in obj.interval_rules.all()]

    def get_nextDbRun(self, obj) -> str | None:  # noqa: N802
        runs = self.context["next_runs"]["db"]
        return runs[0].isoformat() if runs else None

    def get_nextFullRun(self, obj) -> str | None:  # noqa: N802
        runs = self.context["next_runs"]["full"]
        return runs[0].isoformat() if runs else None


Seed003ScheduleSerializer = type(
    "Seed003ScheduleSerializer",
    (_ScheduleBaseSerializer,),
    {"__module__": __name__, **_retention_fields(read_only=True)},
)


Seed003RetentionPreviewInputSerializer = type(
    "Seed003RetentionPreviewInputSerializer",
    (StrictInputSerializer,),
    {
        "__module__": __name__,
        "__doc__": "Proposed retention settings; a field left out keeps the schedule's value, "
        "null clears it.",
        **_retention_fields(),
        "timezone": serializers.CharField(
            required=False,
            help_text="Extension: bucket in this timezone instead of the schedule's.",
        ),
    },
)


class Seed003RetentionBackupSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    type = serializers.CharField()
    status = serializers.CharField()
    trigger = serializers.CharField()
    size = serializers.IntegerField()
    createdAt = serializers.DateTimeField()  # noqa: N815
    reasons = serializers.ListField(
        child=serializers.CharField(),
        help_text="Every rule that keeps it (e.g. `daily 2026-11-20`), or why it goes.",
    )
    reason = serializers.CharField(help_text="The first of `reasons`.")
    expiresAt = serializers.DateTimeField(allow_null=True)  # noqa: N815
    databaseId = serializers.UUIDField(  # noqa: N815
        allow_null=True,
        help_text="Extension: the database a `db` backup is of; null for full and files backups.",
    )


class Seed003RetentionSourceTotalsSerializer(serializers.Serializer):
    """Totals of one database's backups, or of the environment's full and files backups."""

    scope = serializers.ChoiceField(
        choices=["database", "environment"],
        help_text="`database`: one database's backups (a series of their own); "
        "`environment`: the environment's full and files backups.",
    )
    databaseId = serializers.UUIDField(  # noqa: N815
        allow_null=True,
        help_text="Null for the environment, and for backups of a database that was removed.",
    )
    name = serializers.CharField()
    kept = serializers.IntegerField()
    deleted = serializers.IntegerField()
    bytesFreed = serializers.IntegerField()  # noqa: N815


class Seed003RetentionTotalsSerializer(serializers.Serializer):
    kept = serializers.IntegerField()
    deleted = serializers.IntegerField()
    bytesFreed = serializers.IntegerField()  # noqa: N815
    byDatabase = Seed003RetentionSourceTotalsSerializer(  # noqa: N815
        many=True,
        help_text="Every database of the environment (a database without backups shows "
        "zeros), then the environment's full and files backups; the lines add up to the "
        "totals.",
    )


class Seed003RetentionPreviewSerializer(serializers.Serializer):
    deleted = Seed003RetentionBackupSerializer(
        many=True, help_text="The page's backups that would be deleted, newest first."
    )
    kept = Seed003RetentionBackupSerializer(
        many=True, help_text="The page's backups that would be kept, newest first."
    )
    deletedCount = serializers.IntegerField()  # noqa: N815
    keptCount = serializers.IntegerField()  # noqa: N815
    bytesFreed = serializers.IntegerField()  # noqa: N815
    totals = Seed003RetentionTotalsSerializer(
        help_text="Extension: the counts above, and the same per database."
    )
    timezone = serializers.CharField()
    policy = serializers.DictField(
        child=serializers.IntegerField(allow_null=True),
        help_text="The effective retain* settings the preview used.",
    )
    count = serializers.IntegerField(help_text="Extension: how many decisions the plan has.")
    limit = serializers.IntegerField(help_text="Extension: the page size used.")
    offset = serializers.IntegerField(help_text="Extension: the decisions skipped.")


class Seed003CronPresetSerializer(serializers.Serializer):
    name = serializers.CharField()
    cron = serializers.CharField()
    description = serializers.CharField()
    nextRuns = serializers.ListField(child=serializers.DateTimeField())  # noqa: N815
