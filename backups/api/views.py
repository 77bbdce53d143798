"""Seed 003's backup endpoints (paths fixed in API.md): the backups app's own resource.

A thin mapping over ``backups.selectors``, ``backups.filters`` and
``backups.services``: lists page with ``{"results", "count", "limit", "offset"}``,
errors are ``{"error": {"code", "message", "fields"}}`` (``config.errors``).
Schedules, alerts and restores of the same seed live in their apps' ``api`` packages;
the progress stream of a backup is here, over ``api.base.sse``.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from api.base import sse
from api.base.pagination import offset_page, paged_body
from api.base.schema import OFFSET_PARAM, errors, limit_param, page_of, uuid_path
from api.base.views import StreamingAPIView, error_only_renderer
from backups import selectors, services
from backups.api.serializers import (
    AgeSettingsSerializer,
    AgeSettingsUpdateSerializer,
    Seed003BackupSerializer,
    Seed003TriggerBackupSerializer,
    Seed003TriggeredBackupsSerializer,
)
from backups.downloads import download_response
from backups.filters import STATUS_VALUES, FilterDialect, backups_filter
from backups.progress import backup_progress_results
from config.errors import InvalidInput, NotFound
from organizations.models import Role
from organizations.tenancy import TenantViewSet, TenantViewSetMixin

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

BACKUP_EXAMPLE = {
    "id": "8d1e3c2a-6a55-4a9b-9e1f-3c1d2b4a5e6f",
    "name": "quant-gov-dashboard-staging-2026-11-20T02-00-00-000Z",
    "label": "Scheduled backup",
    "type": "db",
    "method": "logical",
    "status": "completed",
    "trigger": "scheduled",
    "engine": "postgresql",
    "engineVersion": "15.4",
    "size": 1945663,
    "checksumSha256": "9f2c…",
    "compression": "zstd",
    "encrypted": True,
    "encryption": "age",
    "keyId": "age:3f1c9a0b2d4e,8a7b6c5d4e3f",
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
    "anomalies": [],
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
        "`databaseId`). Type `base` (an extension) takes a PostgreSQL base backup of each "
        "PostgreSQL database (or of `databaseId`) on demand: a point-in-time recovery window "
        "opens as soon as it completes. Needs the operator role.",
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
                "Base backup on demand",
                value={"type": "base", "label": "PITR from now on"},
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


# --- progress stream -------------------------------------------------------------------------


class BackupProgressView(TenantViewSetMixin, sse.ProgressStreamView):
    @sse.stream_schema(
        "Stream backup progress (SSE)",
        "Streams backup progress events as Server-Sent Events until the backup completes or fails.",
        "Backup",
    )
    def get(self, request, id):  # noqa: A002
        return super().get(request, id)

    def subject(self, id) -> sse.Subject:  # noqa: A002
        backup = selectors.backup_get(organisation=self.tenant.organisation, backup_id=id)
        return sse.Subject(backup_progress_results, backup.pk)


ORGANIZATION_ID = uuid_path("id", "Organisation UUID")


class AgeSettingsViewSet(TenantViewSet):
    """The organisation's age recipients and identity (admins only). Recipients apply to
    new backups; ``manage.py rewrap_age_backups`` gives existing ones to them."""

    required_roles = {"retrieve": Role.ADMIN, "partial_update": Role.ADMIN}
    input_serializers = {"partial_update": AgeSettingsUpdateSerializer}

    def _organisation(self, reference: str):
        organisation = self.tenant.organisation
        if str(organisation.id) != reference and organisation.slug != reference:
            raise NotFound("Organisation not found.")  # another one's is never shown
        return organisation

    @extend_schema(
        operation_id="organization_encryption_retrieve",
        summary="The organisation's age encryption settings",
        parameters=[ORGANIZATION_ID],
        responses={200: AgeSettingsSerializer, **errors(403, 404)},
        tags=["organizations"],
    )
    def retrieve(self, request, id):  # noqa: A002 - the documented path parameter
        organisation = self._organisation(id)
        return Response(AgeSettingsSerializer(selectors.age_settings_of(organisation)).data)

    @extend_schema(
        operation_id="organization_encryption_update",
        summary="Set the organisation's age recipients and/or identity",
        parameters=[ORGANIZATION_ID],
        request=AgeSettingsUpdateSerializer,
        responses={200: AgeSettingsSerializer, **errors(400, 403, 404)},
        tags=["organizations"],
    )
    def partial_update(self, request, id):  # noqa: A002 - the documented path parameter
        organisation = self._organisation(id)
        data = AgeSettingsUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.age_keys_update(
            organisation=organisation,
            recipients=data.validated_data.get("recipients"),
            identity=data.validated_data.get("identity"),
        )
        return Response(AgeSettingsSerializer(selectors.age_settings_of(organisation)).data)


# --- download --------------------------------------------------------------------------------


# Lets a client ask for the bytes; only error bodies are ever rendered, as JSON.
ArtifactRenderer = error_only_renderer("application/octet-stream", "bin")


RAW_PARAM = OpenApiParameter(
    "raw",
    OpenApiTypes.BOOL,
    description="`true`: the stored bytes as they are (encrypted, if the backup is), with "
    "`X-Strongbox-Decrypt` saying how to decrypt them; default: decrypted by the server, "
    "still compressed.",
)


def _raw_flag(request) -> bool:
    value = request.query_params.get("raw")
    if value is None:
        return False
    if value.lower() in ("1", "true"):
        return True
    if value.lower() in ("0", "false"):
        return False
    message = "Must be true or false."
    raise InvalidInput(f"raw: {message}", fields={"raw": [message]})


class BackupDownloadView(TenantViewSetMixin, StreamingAPIView):
    """``GET /api/backups/{id}/download``: the artifact streamed (``backups.downloads``)."""

    renderer_classes = [JSONRenderer, ArtifactRenderer]
    required_roles = {"get": Role.ADMIN}

    @extend_schema(
        operation_id="backup_download",
        summary="Download a backup",
        description="The backup's artifact streamed from its first readable copy: decrypted "
        "on the fly and still compressed (`<name>.dump.zst` and the like), or with "
        "`raw=true` the stored bytes. Every byte is checked as it goes (encrypted chunks are "
        "authenticated, the stored bytes' size and SHA-256 compared with the backup's); a "
        "copy that does not match ends the body early rather than completing it. Needs the "
        "admin role; recorded in the audit log. 409 when the backup is not completed or no "
        "copy can be read.",
        parameters=[BACKUP_ID, RAW_PARAM],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The artifact's bytes"
            ),
            **errors(400, 404, 409),
        },
        tags=["seed 003: backups"],
    )
    def get(self, request, id):  # noqa: A002 - the documented name
        raw = _raw_flag(request)
        backup = selectors.backup_get(organisation=self.tenant.organisation, backup_id=id)
        download = services.backup_download(backup=backup, raw=raw)
        # A download may take long: give the connection back now.
        sse.release_connection()
        return download_response(download)
