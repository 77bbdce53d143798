from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.base.strict import StrictInputSerializer
from backups.api.serializers import Seed003RefSerializer
from restores.models import RestoreStatus


class Seed003RestoreRequestSerializer(StrictInputSerializer):
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
    targetDatabaseId = serializers.UUIDField(  # noqa: N815
        required=False,
        allow_null=True,
        help_text="Extension, for a backup of one database: the database of the target "
        "environment to replace (same engine family). Without it, the backup's own database "
        "(in place), else the target's database of the same slug, else its only database of "
        "the same engine, which the plan's warnings state.",
    )
    newEnvironmentName = serializers.CharField(  # noqa: N815
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=200,
        help_text='reserved for disabled targetType="new"',
    )


class Seed003RestoreMemberSourceSerializer(serializers.Serializer):
    databaseId = serializers.UUIDField(  # noqa: N815
        source="database_id", allow_null=True, help_text="null for the files"
    )
    name = serializers.CharField()
    engine = serializers.CharField(help_text="postgresql, mysql, mariadb, sqlite or files")
    version = serializers.CharField(help_text="The server version the backup was taken from.")


class Seed003RestoreMemberTargetSerializer(serializers.Serializer):
    environmentId = serializers.UUIDField(source="environment_id")  # noqa: N815
    databaseId = serializers.UUIDField(  # noqa: N815
        source="database_id", allow_null=True, help_text="null for the files"
    )
    name = serializers.CharField(help_text="The database replaced (the directory for files).")
    engine = serializers.CharField()
    version = serializers.CharField(help_text="The target server's version, when known.")


class Seed003RestoreMemberSerializer(serializers.Serializer):
    """One member of a backup and the database (or files directory) it replaces."""

    label = serializers.CharField()
    source = Seed003RestoreMemberSourceSerializer()
    target = Seed003RestoreMemberTargetSerializer()


class Seed003RestorePlanSerializer(serializers.Serializer):
    members = Seed003RestoreMemberSerializer(many=True)
    warnings = serializers.ListField(
        child=serializers.CharField(),
        help_text="What the restore replaces that may be unexpected: another name, another "
        "major version, the source environment itself, the fallback to the only database of "
        "the same engine.",
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
    members = Seed003RestoreMemberSerializer(
        many=True, help_text="The plan the restore was accepted with (empty for older restores)."
    )
    warnings = serializers.ListField(source="plan_warnings", child=serializers.CharField())
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
        return obj.percent

    def get_requestedBy(self, obj) -> str | None:  # noqa: N802
        return obj.requested_by.get_username() if obj.requested_by_id else None


def _fields(name: str, fields: dict) -> type[serializers.Serializer]:
    """A serializer class from a dict of fields (for names such as ``from``)."""
    return type(name, (serializers.Serializer,), {"__module__": __name__, **fields})


def _dt(**kwargs):
    return serializers.DateTimeField(allow_null=True, **kwargs)


def _text():
    return serializers.CharField(allow_null=True)


Seed003PitrWindowSerializer = _fields(
    "Seed003PitrWindowSerializer",
    {
        "from": serializers.DateTimeField(),
        "to": serializers.DateTimeField(),
        "baseBackupId": serializers.UUIDField(),
    },
)

Seed003PitrBaseBackupSerializer = _fields(
    "Seed003PitrBaseBackupSerializer",
    {
        "id": serializers.UUIDField(),
        "name": serializers.CharField(),
        "timeline": serializers.IntegerField(),
        "startWal": serializers.CharField(),
        "startLsn": serializers.CharField(),
        "stopLsn": _text(),
        "startTime": _dt(),
        "stopTime": _dt(),
        "completedAt": _dt(),
        "size": serializers.IntegerField(allow_null=True),
        "recoverableFrom": _dt(),
        "recoverableTo": _dt(),
    },
)

Seed003WalArchivingSerializer = _fields(
    "Seed003WalArchivingSerializer",
    {
        "status": serializers.ChoiceField(
            choices=["not-started", "ok", "idle-or-lagging", "failing"]
        ),
        "lastArchivedWal": _text(),
        "lastArchivedAt": _dt(),
        "lastFailedWal": _text(),
        "lastFailedAt": _dt(),
        "lastError": _text(),
        "failedCount": serializers.IntegerField(),
        "consecutiveFailures": serializers.IntegerField(),
        "archivedCount": serializers.IntegerField(),
        "lagSeconds": serializers.FloatField(allow_null=True),
    },
)

Seed003WalGapSerializer = _fields(
    "Seed003WalGapSerializer",
    {
        "timeline": serializers.IntegerField(),
        "afterWal": serializers.CharField(
            allow_null=True, help_text="The last segment before the gap that is there."
        ),
        "beforeWal": serializers.CharField(
            allow_null=True,
            help_text="The first segment after the gap that is there; null when the gap runs "
            "to the newest archived segment (those were lost).",
        ),
        "firstMissingWal": serializers.CharField(),
        "missingSegments": serializers.IntegerField(),
        "reason": serializers.ChoiceField(
            choices=["not-archived", "lost"],
            help_text="not-archived: never handed to Strongbox; lost: archived, but the archive "
            "verification found no destination holding it intact.",
        ),
        "lostWal": serializers.ListField(
            child=serializers.CharField(), help_text="The archived segments of the gap lost."
        ),
        "problem": serializers.CharField(
            allow_null=True, help_text="What the verification found, per destination."
        ),
    },
)

Seed003WalVerificationSerializer = _fields(
    "Seed003WalVerificationSerializer",
    {
        "lastListedAt": _dt(help_text="When a listing last checked the WAL files."),
        "oldestVerifiedAt": _dt(
            help_text="The oldest full re-read (checksum) of a WAL file still standing."
        ),
        "unverifiedFiles": serializers.IntegerField(help_text="Files never re-read yet."),
        "filesWithProblems": serializers.IntegerField(),
        "lostFiles": serializers.IntegerField(),
    },
)

Seed003PitrDatabaseSerializer = _fields(
    "Seed003PitrDatabaseSerializer",
    {
        "databaseId": serializers.UUIDField(),
        "databaseName": serializers.CharField(),
        "earliestRecoverableTime": _dt(),
        "latestRecoverableTime": _dt(),
        "windows": Seed003PitrWindowSerializer(many=True),
        "baseBackups": Seed003PitrBaseBackupSerializer(many=True),
        "archiving": Seed003WalArchivingSerializer(),
        "gaps": Seed003WalGapSerializer(many=True),
        "verification": Seed003WalVerificationSerializer(),
        "walFiles": serializers.IntegerField(),
        "walStoredBytes": serializers.IntegerField(),
        "lastTransactionAt": _dt(),
    },
)

Seed003PitrCoverageSerializer = _fields(
    "Seed003PitrCoverageSerializer",
    {
        "environmentId": serializers.UUIDField(),
        "walEnabled": serializers.BooleanField(),
        "walRetentionDays": serializers.IntegerField(allow_null=True),
        "status": serializers.ChoiceField(
            choices=["no-postgresql-database", "failing", "gaps", "no-window", "ok"]
        ),
        "earliestRecoverableTime": _dt(
            help_text="The earliest time every PostgreSQL database can be recovered to."
        ),
        "latestRecoverableTime": _dt(),
        "baseBackups": Seed003PitrBaseBackupSerializer(many=True),
        "databases": Seed003PitrDatabaseSerializer(many=True),
        "generatedAt": serializers.DateTimeField(),
    },
)
