"""Seed 003: the full backup service, backup endpoints (paths fixed in API.md).

A thin mapping over ``backups.selectors``, ``backups.filters`` and
``backups.services``: lists page with ``{"results", "count", "limit", "offset"}``,
errors are ``{"error": {"code", "message", "fields"}}`` (``config.errors``).
Schedules, alerts and restores of the same seed live in their apps' ``api`` packages;
the progress streams in ``backups.api.sse``.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from backups import selectors, services
from backups.api import sse
from backups.filters import STATUS_VALUES, FilterDialect, backups_filter
from backups.models import Backup, BackupKind
from config.errors import InvalidInput, NotFound
from organizations.api.common import (
    OFFSET_PARAM,
    TenantViewSet,
    errors,
    limit_param,
    offset_page,
    page_of,
    paged_body,
    routes,
    uuid_path,
)
from organizations.models import Role
from schedules import timing

# Seed 003 names a database backup "db"; a PostgreSQL base backup is one too.
TYPE_OF_KIND = {
    BackupKind.DATABASE: "db",
    BackupKind.BASE: "db",
    BackupKind.FULL: "full",
    BackupKind.FILESYSTEM: "filesystem",
}
TYPE_VALUES = ("db", "database", "full", "filesystem")
DIALECT = FilterDialect(params={"status": "status", "kind": "type"})

BACKUP_ID = uuid_path("id", "Backup UUID")
ENV_ID = uuid_path("env_id", "Environment UUID")
PROJECT_ID = uuid_path("projectId", "Project UUID")
STATUS_PARAM = OpenApiParameter(
    "status",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    enum=STATUS_VALUES,
    description="Filter by backup status (an unknown value is a 400 naming the allowed ones)",
)
TYPE_PARAM = OpenApiParameter(
    "type",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    enum=TYPE_VALUES,
    description="Filter by backup type (`db`, synonym `database`; `full`; `filesystem`)",
)

# --- serializers -----------------------------------------------------------------------------


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


class Seed003BackupSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    label = serializers.CharField(source="description")
    type = serializers.SerializerMethodField()
    status = serializers.CharField(help_text="Canonical status: " + ", ".join(STATUS_VALUES))
    trigger = serializers.CharField()
    engine = serializers.CharField()
    engineVersion = serializers.CharField(source="engine_version")  # noqa: N815
    size = serializers.IntegerField(allow_null=True, help_text="Bytes of the stored artifact.")
    checksumSha256 = serializers.CharField(source="checksum_sha256")  # noqa: N815
    compression = serializers.CharField()
    encrypted = serializers.BooleanField()
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

    @extend_schema_field(serializers.ChoiceField(choices=["db", "full", "filesystem"]))
    def get_type(self, backup: Backup) -> str:
        return TYPE_OF_KIND.get(backup.kind, backup.kind)


class Seed003TriggerBackupSerializer(serializers.Serializer):
    type = serializers.ChoiceField(
        choices=["db", "database", "full", "filesystem"],
        default="db",
        help_text='"db" or "full" ("filesystem" as an extension; "database" = "db")',
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


class Seed003CronPresetSerializer(serializers.Serializer):
    name = serializers.CharField()
    cron = serializers.CharField()
    description = serializers.CharField()
    nextRuns = serializers.ListField(child=serializers.DateTimeField())  # noqa: N815


BACKUP_EXAMPLE = {
    "id": "8d1e3c2a-6a55-4a9b-9e1f-3c1d2b4a5e6f",
    "name": "quant-gov-dashboard-staging-2026-11-20T02-00-00-000Z",
    "label": "Scheduled backup",
    "type": "db",
    "status": "completed",
    "trigger": "scheduled",
    "engine": "postgresql",
    "engineVersion": "15.4",
    "size": 1945663,
    "checksumSha256": "9f2c…",
    "compression": "zstd",
    "encrypted": True,
    "environment": {"id": "0b6f…", "name": "Staging", "slug": "staging"},
    "project": {"id": "5f0c…", "name": "Dashboard", "slug": "dashboard"},
    "database": {"id": "77aa…", "name": "Main", "engine": "postgresql"},
    "destinations": [
        {
            "id": "c3d4…",
            "name": "Local disk",
            "kind": "local",
            "key": "quant-gov/dashboard/staging/….pgdump.zst",
            "status": "stored",
            "size": 1945663,
            "fileExists": True,
            "error": "",
            "lastVerifiedAt": "2026-11-20T02:01:10Z",
        }
    ],
    "phase": "VERIFY",
    "bytesDone": 1945663,
    "bytesTotal": 1945663,
    "percent": 100.0,
    "message": "Stored in 1 destination.",
    "createdAt": "2026-11-20T02:00:00Z",
    "updatedAt": "2026-11-20T02:01:10Z",
    "startedAt": "2026-11-20T02:00:01Z",
    "completedAt": "2026-11-20T02:01:10Z",
    "expiresAt": None,
    "verifiedAt": "2026-11-20T02:01:10Z",
}


def _page_example(item: dict, limit: int) -> OpenApiExample:
    return OpenApiExample(
        "Page",
        value={"results": [item], "count": 1, "limit": limit, "offset": 0},
        response_only=True,
        status_codes=["200"],
    )


# --- views -----------------------------------------------------------------------------------


class Seed003BackupViewSet(TenantViewSet):
    """Backups of an environment or project; one backup; triggers and deletion."""

    required_roles = {"create": Role.OPERATOR, "destroy": Role.ADMIN}
    input_serializers = {"create": Seed003TriggerBackupSerializer}

    def _list(self, request, queryset, *, default_limit: int):
        queryset = backups_filter(queryset=queryset, params=request.query_params, dialect=DIALECT)
        items, count, limit, offset = offset_page(request, queryset, default_limit=default_limit)
        data = Seed003BackupSerializer(items, many=True).data
        return Response(paged_body(data, count, limit, offset))

    @extend_schema(
        operation_id="environment_backups_list",
        summary="List environment backups",
        description="Returns backups for the environment with optional status/type filters "
        "and pagination.",
        parameters=[ENV_ID, STATUS_PARAM, TYPE_PARAM, limit_param(20), OFFSET_PARAM],
        responses={
            200: page_of(Seed003BackupSerializer, "Seed003BackupPage"),
            **errors(400, 404),
        },
        examples=[_page_example(BACKUP_EXAMPLE, 20)],
        tags=["seed 003: backups"],
    )
    def environment_list(self, request, env_id):
        organisation = self.tenant.organisation
        environment = selectors.environment_get(organisation=organisation, reference=env_id)
        queryset = selectors.backups_for_environment(
            organisation=organisation, environment=environment
        )
        return self._list(request, queryset, default_limit=20)

    @extend_schema(
        operation_id="project_backups_list",
        summary="List project backups",
        description="Returns all backups across all environments in the project with "
        "environment metadata.",
        parameters=[PROJECT_ID, STATUS_PARAM, TYPE_PARAM, limit_param(50), OFFSET_PARAM],
        responses={
            200: page_of(Seed003BackupSerializer, "Seed003BackupPage"),
            **errors(400, 404),
        },
        examples=[_page_example(BACKUP_EXAMPLE, 50)],
        tags=["seed 003: backups"],
    )
    def project_list(self, request, projectId):  # noqa: N803 - the documented name
        organisation = self.tenant.organisation
        project = selectors.project_get(organisation=organisation, reference=projectId, slugs=False)
        queryset = selectors.backups_for_project(organisation=organisation, project=project)
        return self._list(request, queryset, default_limit=50)

    @extend_schema(
        operation_id="environment_backups_create",
        summary="Trigger a manual backup",
        description="Creates a backup record and enqueues an asynchronous backup job for the "
        "environment. Type `db` makes one backup per database of the environment (or of "
        "`databaseId`). Needs the operator role.",
        parameters=[ENV_ID],
        request=Seed003TriggerBackupSerializer,
        responses={202: Seed003TriggeredBackupsSerializer, **errors(400, 404, 409)},
        examples=[
            OpenApiExample(
                "Trigger",
                value={"type": "db", "label": "Before the migration"},
                request_only=True,
            ),
            OpenApiExample(
                "Accepted",
                value={"results": [{**BACKUP_EXAMPLE, "status": "scheduled"}], "count": 1},
                response_only=True,
                status_codes=["202"],
            ),
        ],
        tags=["seed 003: backups"],
    )
    def create(self, request, env_id):
        organisation = self.tenant.organisation
        environment = selectors.environment_get(organisation=organisation, reference=env_id)
        body = Seed003TriggerBackupSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        database = None
        if data.get("databaseId"):
            try:
                database = selectors.database_get(
                    organisation=organisation, reference=data["databaseId"], environment=environment
                )
            except NotFound as exc:  # a body field, so it is a 400 naming it
                message = "No such database in this environment."
                raise InvalidInput(message, fields={"databaseId": [message]}) from exc
        destination = data.get("destination")
        created = services.backup_request(
            environment=environment,
            kind=data["type"],
            database=database,
            destination_ids=[destination] if destination else None,
            description=data.get("label", ""),
            user=self.tenant.user,
        )
        backups = selectors.backups_for_organisation(organisation=organisation).filter(
            pk__in=[b.pk for b in created]
        )
        results = Seed003BackupSerializer(backups, many=True).data
        return Response({"results": results, "count": len(results)}, status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="backup_retrieve",
        summary="Get backup details",
        description="Returns a single backup's details including size, status, and "
        "destination info.",
        parameters=[BACKUP_ID],
        responses={200: Seed003BackupSerializer, **errors(404)},
        examples=[OpenApiExample("Backup", value=BACKUP_EXAMPLE, response_only=True)],
        tags=["seed 003: backups"],
    )
    def retrieve(self, request, id):  # noqa: A002 - the documented name
        backup = selectors.backup_get(organisation=self.tenant.organisation, backup_id=id)
        return Response(Seed003BackupSerializer(backup).data)

    @extend_schema(
        operation_id="backup_destroy",
        summary="Delete a backup",
        description="Marks a backup for deletion and enqueues async cleanup from all storage "
        "destinations. Needs the admin role; a running backup is a 409.",
        parameters=[BACKUP_ID],
        request=None,
        responses={202: Seed003BackupSerializer, **errors(404, 409)},
        tags=["seed 003: backups"],
    )
    def destroy(self, request, id):  # noqa: A002 - the documented name
        organisation = self.tenant.organisation
        backup = selectors.backup_get(organisation=organisation, backup_id=id)
        backup = services.backup_delete(backup=backup)
        backup = selectors.backup_get(organisation=organisation, backup_id=backup.pk)
        return Response(Seed003BackupSerializer(backup).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="backup_cron_presets",
        summary="Get cron expression presets",
        description="Returns a list of common cron expression presets for backup scheduling, "
        "each with its next runs in `timezone` (default UTC).",
        parameters=[
            OpenApiParameter(
                "timezone",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                description="IANA timezone for nextRuns (extension), e.g. Europe/London",
            )
        ],
        responses={
            200: page_of(Seed003CronPresetSerializer, "Seed003CronPresetList"),
            **errors(400),
        },
        examples=[
            OpenApiExample(
                "Presets",
                value={
                    "results": [
                        {
                            "name": "daily",
                            "cron": "0 2 * * *",
                            "description": "Every day at 02:00",
                            "nextRuns": ["2026-11-24T02:00:00+00:00"],
                        }
                    ],
                    "count": 1,
                    "limit": 1,
                    "offset": 0,
                },
                response_only=True,
            )
        ],
        tags=["seed 003: schedules"],
    )
    def cron_presets(self, request):
        tz = request.query_params.get("timezone") or "UTC"
        try:
            zone = timing.validate_timezone(tz)
        except timing.ScheduleError as exc:
            raise InvalidInput(exc.message, fields={"timezone": [exc.message]}) from None
        presets = timing.presets_with_next_runs(zone, timezone.now())
        return Response(paged_body(presets, len(presets), len(presets), 0))


def _view(actions):
    return lambda **kw: Seed003BackupViewSet.as_view(actions, **kw)


urlpatterns = [
    *routes("api/backups/cron-presets", _view({"get": "cron_presets"}), "seed003-cron"),
    *routes(
        "api/environments/<str:env_id>/backups",
        _view({"get": "environment_list", "post": "create"}),
        "seed003-environment-backups",
    ),
    *routes(
        "api/projects/<str:projectId>/backups",
        _view({"get": "project_list"}),
        "seed003-project-backups",
    ),
    *routes(
        "api/backups/<str:id>",
        _view({"get": "retrieve", "delete": "destroy"}),
        "seed003-backup",
    ),
    *routes("api/backups/<str:id>/progress", sse.BackupProgressView.as_view, "seed003-sse"),
    *routes(
        "api/backups/<str:id>/restore/progress",
        sse.BackupRestoreProgressView.as_view,
        "seed003-restore-sse",
    ),
    *routes("api/restores/<str:id>/progress", sse.RestoreProgressView.as_view, "restore-sse"),
]
