"""Serializers of the tenancy model (Strongbox's own resources, seed 003 style).

Field names are camelCase like seed 003's. These parse and shape-check input and render
output; the rules (slugs, allowed server paths) are in ``organizations.services``.
A database password is write-only: it is accepted on create and update and never
rendered back (``hasPassword`` says whether one is set).
"""

from rest_framework import serializers

from api.base.strict import StrictInputSerializer
from organizations.models import Engine, Role


class TokenRequestSerializer(StrictInputSerializer):
    username = serializers.CharField(max_length=150)  # the user model's
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)
    otp = serializers.CharField(
        required=False,
        max_length=16,
        help_text=(
            "The current 6-digit code of the user's authenticator app: required when the "
            "user has two-factor authentication on (then a missing one is a 400 and a wrong "
            "or reused one a 401, each naming `otp`); ignored otherwise."
        ),
    )


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    tokenType = serializers.CharField(default="Bearer")  # noqa: N815 - the API's casing
    expiresIn = serializers.IntegerField(help_text="Seconds until the token expires.")  # noqa: N815


class OrganizationSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    slug = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices, help_text="The caller's role in it.")


# --- shared slug handling -------------------------------------------------------------------


class _SluggedWriteSerializer(StrictInputSerializer):
    """``name`` plus an optional ``slug`` (derived from the name), unique among siblings."""

    # The docstring is the schema's description. Only the shape is checked here; the
    # services derive a missing slug and refuse one a sibling uses (a 400 naming slug).

    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=100, required=False)


# --- projects -------------------------------------------------------------------------------


class ProjectSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    slug = serializers.CharField()
    createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815


class ProjectWriteSerializer(_SluggedWriteSerializer):
    pass


# --- environments ---------------------------------------------------------------------------


class EnvironmentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    projectId = serializers.UUIDField(source="project_id")  # noqa: N815
    name = serializers.CharField()
    slug = serializers.CharField()
    filesPath = serializers.CharField(source="files_path")  # noqa: N815
    createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815


class EnvironmentWriteSerializer(_SluggedWriteSerializer):
    filesPath = serializers.CharField(  # noqa: N815
        source="files_path",
        max_length=1000,
        required=False,
        allow_blank=True,
        help_text="Directory whose files are backed up (filesystem and full backups); it "
        "must be inside the organisation's directory under STRONGBOX_TENANT_ROOT or a "
        "directory the operator granted it.",
    )


# --- databases ------------------------------------------------------------------------------


class DatabaseSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    environmentId = serializers.UUIDField(source="environment_id")  # noqa: N815
    name = serializers.CharField()
    slug = serializers.CharField()
    engine = serializers.ChoiceField(choices=Engine.choices)
    version = serializers.CharField()
    host = serializers.CharField()
    port = serializers.IntegerField(allow_null=True)
    username = serializers.CharField()
    databaseName = serializers.CharField(source="database_name")  # noqa: N815
    options = serializers.DictField()
    hasPassword = serializers.SerializerMethodField()  # noqa: N815
    anomalyChecks = serializers.BooleanField(source="anomaly_checks")  # noqa: N815
    anomalyDropPercent = serializers.IntegerField(  # noqa: N815
        source="anomaly_drop_percent", allow_null=True
    )
    anomalyJumpPercent = serializers.IntegerField(  # noqa: N815
        source="anomaly_jump_percent", allow_null=True
    )
    anomalyMinRows = serializers.IntegerField(source="anomaly_min_rows", allow_null=True)  # noqa: N815
    anomalyCompressionDropPercent = serializers.IntegerField(  # noqa: N815
        source="anomaly_compression_drop_percent", allow_null=True
    )
    createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815

    def get_hasPassword(self, obj) -> bool:  # noqa: N802
        return bool(obj.password)


class DatabaseWriteSerializer(_SluggedWriteSerializer):
    engine = serializers.ChoiceField(choices=Engine.choices)
    host = serializers.CharField(max_length=255, required=False, allow_blank=True)
    port = serializers.IntegerField(min_value=1, max_value=65535, required=False, allow_null=True)
    username = serializers.CharField(max_length=200, required=False, allow_blank=True)
    password = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text="Write-only: stored encrypted, never returned. Leave it out to keep the "
        "current one; an empty string removes it.",
    )
    databaseName = serializers.CharField(  # noqa: N815
        source="database_name",
        max_length=1000,
        help_text="Database name on the server, or the file path for SQLite.",
    )
    options = serializers.DictField(required=False)
    # Anomaly alerts: null takes the installation's default (STRONGBOX_ANOMALY_*).
    anomalyChecks = serializers.BooleanField(  # noqa: N815
        source="anomaly_checks",
        required=False,
        help_text="Compare each completed backup with the median of its recent history.",
    )
    anomalyDropPercent = serializers.IntegerField(  # noqa: N815
        source="anomaly_drop_percent",
        required=False,
        allow_null=True,
        min_value=1,
        max_value=99,
        help_text="A size or table row count below this % of the median is an anomaly "
        "(null: the default, 50).",
    )
    anomalyJumpPercent = serializers.IntegerField(  # noqa: N815
        source="anomaly_jump_percent",
        required=False,
        allow_null=True,
        min_value=101,
        max_value=100000,
        help_text="A size or table row count above this % of the median is an anomaly "
        "(null: the default, 200).",
    )
    anomalyMinRows = serializers.IntegerField(  # noqa: N815
        source="anomaly_min_rows",
        required=False,
        allow_null=True,
        min_value=0,
        max_value=1_000_000_000,
        help_text="A table's count must differ from its median by at least this many rows "
        "to be an anomaly (null: the default, 100).",
    )
    anomalyCompressionDropPercent = serializers.IntegerField(  # noqa: N815
        source="anomaly_compression_drop_percent",
        required=False,
        allow_null=True,
        min_value=1,
        max_value=99,
        help_text="A compression ratio below this % of the median is an anomaly "
        "(null: the default, 50).",
    )
