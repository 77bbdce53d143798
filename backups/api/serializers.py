"""Seed 003's spelling of a backup, shared by the backups, schedules and restores endpoints."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.base.strict import StrictInputSerializer
from backups.filters import STATUS_VALUES
from backups.models import Backup, BackupKind

# Seed 003 names a database backup "db"; a PostgreSQL base backup is one too.
TYPE_OF_KIND = {
    BackupKind.DATABASE: "db",
    BackupKind.BASE: "db",
    BackupKind.FULL: "full",
    BackupKind.FILESYSTEM: "filesystem",
}


class Seed003RefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    slug = serializers.CharField()


class Seed003DatabaseRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    engine = serializers.CharField()


class Seed003BackupDestinationSerializer(serializers.Serializer):
    """One stored copy of the backup: where it is and whether it is there."""

    id = serializers.UUIDField(source="destination.id")
    name = serializers.CharField(source="destination.name")
    kind = serializers.CharField(source="destination.kind")
    key = serializers.CharField()
    status = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)
    fileExists = serializers.BooleanField(source="file_exists")  # noqa: N815
    error = serializers.CharField()
    lastVerifiedAt = serializers.DateTimeField(source="last_verified_at", allow_null=True)  # noqa: N815
    lockedUntil = serializers.DateTimeField(  # noqa: N815
        source="locked_until",
        allow_null=True,
        help_text="S3 Object Lock: the store refuses to delete this copy before this date.",
    )


class Seed003BackupAnomalySerializer(serializers.Serializer):
    """One way a completed backup is unlike its series' recent history (backups/anomaly.py)."""

    measure = serializers.ChoiceField(
        choices=["size", "rows", "compression", "empty"],
        help_text="Stored size, a table's row count, the compression ratio, or no rows at all.",
    )
    table = serializers.CharField(allow_null=True, help_text="The table, for `rows`.")
    value = serializers.FloatField(help_text="This backup's value.")
    median = serializers.FloatField(help_text="The median of the recent backups compared.")
    message = serializers.CharField()


class Seed003BackupSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    label = serializers.CharField(source="description")
    type = serializers.SerializerMethodField()
    method = serializers.ChoiceField(
        choices=["logical", "physical", "archive"],
        help_text="Extension: how it was taken. `physical` is a PostgreSQL base backup "
        "(pg_basebackup, for point-in-time recovery; its `type` is `db`), `logical` a dump, "
        "`archive` a files archive.",
    )
    status = serializers.CharField(help_text="Canonical status: " + ", ".join(STATUS_VALUES))
    trigger = serializers.CharField()
    engine = serializers.CharField()
    engineVersion = serializers.CharField(source="engine_version")  # noqa: N815
    size = serializers.IntegerField(allow_null=True, help_text="Bytes of the stored artifact.")
    checksumSha256 = serializers.CharField(source="checksum_sha256")  # noqa: N815
    compression = serializers.CharField()
    encrypted = serializers.BooleanField()
    encryption = serializers.ChoiceField(
        choices=["none", "aes-256-gcm", "age"], help_text="The artifact's encryption format."
    )
    keyId = serializers.CharField(  # noqa: N815
        source="key_id",
        help_text="AES-256-GCM: the key's id; age: \"age:\" and the recipients' fingerprints "
        "(the first 12 hex digits of each age1… key's SHA-256).",
    )
    environment = Seed003RefSerializer()
    project = Seed003RefSerializer(source="environment.project")
    database = Seed003DatabaseRefSerializer(allow_null=True)
    destinations = Seed003BackupDestinationSerializer(source="copies", many=True)
    phase = serializers.CharField()
    bytesDone = serializers.IntegerField(source="bytes_done")  # noqa: N815
    bytesTotal = serializers.IntegerField(source="bytes_total", allow_null=True)  # noqa: N815
    percent = serializers.FloatField(allow_null=True)
    message = serializers.CharField()
    createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815
    updatedAt = serializers.DateTimeField(source="updated_at")  # noqa: N815
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)  # noqa: N815
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)  # noqa: N815
    expiresAt = serializers.DateTimeField(source="expires_at", allow_null=True)  # noqa: N815
    verifiedAt = serializers.DateTimeField(source="verified_at", allow_null=True)  # noqa: N815
    anomalies = Seed003BackupAnomalySerializer(
        many=True,
        help_text="What is unusual about this completed backup against its recent history "
        "(raises a `backup_size_anomaly` alert); empty when nothing is.",
    )
    lockedUntil = serializers.DateTimeField(  # noqa: N815
        source="locked_until",
        allow_null=True,
        read_only=True,
        help_text="The latest object lock date of its copies: it cannot be deleted before.",
    )

    @extend_schema_field(serializers.ChoiceField(choices=["db", "full", "filesystem"]))
    def get_type(self, backup: Backup) -> str:
        return TYPE_OF_KIND.get(backup.kind, backup.kind)


class Seed003TriggerBackupSerializer(StrictInputSerializer):
    type = serializers.ChoiceField(
        choices=["db", "database", "full", "filesystem", "base"],
        default="db",
        help_text='"db" or "full". Extensions: "filesystem"; "base": a PostgreSQL base backup '
        "(pg_basebackup) of each PostgreSQL database (or of `databaseId`) for point-in-time "
        "recovery, stored where the WAL goes, which opens a recovery window as soon as it "
        'completes (no `destination`); "database" = "db".',
    )
    label = serializers.CharField(
        max_length=500, required=False, allow_blank=True, help_text="Shown as the description."
    )
    destination = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text="Destination id (or name); default: the organisation's default destination.",
    )
    databaseId = serializers.UUIDField(  # noqa: N815
        required=False,
        allow_null=True,
        help_text="Extension: back up only this database of the environment (type db).",
    )


class Seed003TriggeredBackupsSerializer(serializers.Serializer):
    results = Seed003BackupSerializer(many=True)
    count = serializers.IntegerField()


class AgeSettingsSerializer(serializers.Serializer):
    """An organisation's age encryption: recipients new backups are encrypted to, and
    whether an identity to restore them is held (the identity itself is never shown)."""

    organizationId = serializers.UUIDField(source="organisation.id")  # noqa: N815
    recipients = serializers.ListField(
        child=serializers.CharField(), help_text="The organisation's own age1… public keys."
    )
    installationRecipients = serializers.ListField(  # noqa: N815
        source="installation_recipients",
        child=serializers.CharField(),
        help_text="STRONGBOX_AGE_RECIPIENTS: every backup is encrypted to these too (escrow).",
    )
    identityConfigured = serializers.BooleanField(source="identity_configured")  # noqa: N815
    identityRecipients = serializers.ListField(  # noqa: N815
        source="identity_recipients",
        child=serializers.CharField(),
        help_text="The public keys of the stored identity.",
    )
    identityFileConfigured = serializers.BooleanField(  # noqa: N815
        source="identity_file_configured",
        help_text="Whether STRONGBOX_AGE_IDENTITY_FILE is set on the process that answered.",
    )
    encryption = serializers.ChoiceField(
        choices=["none", "aes-256-gcm", "age"], help_text="What new backups are encrypted with."
    )
    keyId = serializers.CharField(source="key_id")  # noqa: N815
    updatedAt = serializers.DateTimeField(source="updated_at", allow_null=True)  # noqa: N815


class AgeSettingsUpdateSerializer(StrictInputSerializer):
    recipients = serializers.ListField(
        child=serializers.CharField(max_length=200, trim_whitespace=True),
        max_length=50,
        required=False,
        help_text="age1… public keys; replaces the list (empty: none of the organisation's).",
    )
    identity = serializers.CharField(
        max_length=20_000,
        required=False,
        allow_blank=True,
        write_only=True,
        trim_whitespace=True,
        help_text="AGE-SECRET-KEY-1… lines (an age-keygen file); write-only, empty removes it.",
    )
