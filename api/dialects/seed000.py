"""Seed 000: an environment's backups by type.

``GET /api/v3/organizations/{organisation}/applications/{application}``
``/environments/{environment}/backups/{type}``

Keyset paging (``nextToken``), ``order`` asc/desc, errors as ``{"error": "<message>"}``.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.base.formats import iso_millis_z, iso_seconds_offset
from api.base.pagination import MAX_LIMIT, decode_cursor, keyset_paginate
from api.base.schema import enum_field
from api.base.strict import StrictQuerySerializer
from api.base.views import DialectAPIView
from api.dialects.filters import filter_parameters
from backups.filters import FilterDialect, backups_filter
from backups.models import Backup, BackupMethod, BackupStatus
from backups.selectors import backups_for_environment, environment_get, primary_copy
from config.errors import ApplicationError, NotFound, Unprocessable
from organizations.tenancy import ORGANISATION_HEADER, TenantViewSetMixin

TYPES = ("database", "filesystem")
TYPE_ERROR = "The backup type must be either database or filesystem"

FILTERS = FilterDialect(
    params={
        "status": "status",
        "created_before": "createdBefore",
        "created_after": "createdAfter",
        "holds": "type",
    }
)

SIZE_UNITS = ("B", "KB", "MB", "GB", "TB")


def size_formatted(size: int) -> str:
    """1024-based with two decimals: 1945663 -> ``1.86 MB``."""
    value = float(size)
    unit = 0
    while value >= 1024 and unit < len(SIZE_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.2f} {SIZE_UNITS[unit]}"


def render_seed000_error(error: ApplicationError) -> dict:
    return {"error": error.message}


class Seed000Query(StrictQuerySerializer):
    order = serializers.ChoiceField(
        choices=["asc", "desc"],
        default="desc",
        help_text="Sort order by creation date (asc = oldest first, desc = newest first).",
    )
    limit = serializers.IntegerField(
        min_value=1,
        default=20,
        help_text=f"Maximum number of backups to return (at most {MAX_LIMIT}; larger is clamped).",
    )
    nextToken = serializers.CharField(  # noqa: N815 - the document's casing
        required=False, help_text="Token for retrieving the next page of results."
    )

    def validate_limit(self, value: int) -> int:
        return min(value, MAX_LIMIT)


class Seed000Backup(serializers.Serializer):
    backupId = serializers.CharField(help_text="The backup's unique readable name.")  # noqa: N815
    status = enum_field("BackupStatus", BackupStatus.values)
    type = enum_field("Seed000BackupType", BackupMethod.values)
    engine = serializers.CharField()
    description = serializers.CharField()
    createdAt = serializers.DateTimeField()  # noqa: N815
    updatedAt = serializers.DateTimeField()  # noqa: N815
    taskArn = serializers.CharField(help_text="The worker task id.")  # noqa: N815
    s3Key = serializers.CharField(allow_null=True, help_text="The artifact key.")  # noqa: N815
    bucketName = serializers.CharField(allow_null=True)  # noqa: N815
    size = serializers.IntegerField(help_text="Bytes; 0 when nothing was stored.")
    sizeFormatted = serializers.CharField()  # noqa: N815
    fileExists = serializers.BooleanField()  # noqa: N815

    def to_representation(self, backup: Backup) -> dict:
        copy = primary_copy(backup)
        destination = copy.destination if copy is not None else None
        size = backup.size or 0  # a backup that stored nothing (yet) has no size: 0, not null
        return {
            "backupId": backup.name,
            "status": backup.status,
            "type": backup.method,
            "engine": backup.engine,
            "description": backup.description,
            "createdAt": iso_millis_z(backup.created_at),
            "updatedAt": iso_seconds_offset(backup.updated_at),
            "taskArn": backup.task_id,
            "s3Key": copy.key if copy is not None else None,
            "bucketName": (destination.bucket_name or destination.name) if destination else None,
            "size": size,
            "sizeFormatted": size_formatted(size),
            "fileExists": bool(copy is not None and copy.file_exists),
        }


class Seed000BackupList(serializers.Serializer):
    backups = Seed000Backup(many=True)
    count = serializers.IntegerField(help_text="Number of backups in this page.")
    nextToken = serializers.CharField(  # noqa: N815
        allow_null=True, help_text="Token for the next page, if more data is available."
    )
    message = serializers.CharField()


class Seed000Error(serializers.Serializer):
    error = serializers.CharField()


EXAMPLE = {
    "backups": [
        {
            "backupId": "quant-gov-dashboard-staging-2025-09-19T21-50-27-145Z",
            "status": "completed",
            "type": "logical",
            "engine": "mysql",
            "description": "Manual backup",
            "createdAt": "2025-09-19T21:50:27.317Z",
            "updatedAt": "2025-09-19T21:51:09+00:00",
            "taskArn": "arn:aws:ecs:ap-southeast-4:056500205767:task/au-prd-quant-cloud-cluster/"
            "305a68f04bf641f887a87b74d67fa57e",
            "s3Key": "database-backups/quant-gov/dashboard/staging/"
            "quant-gov-dashboard-staging-2025-09-19T21-50-27-145Z.sql.gz",
            "bucketName": "au-prd-manual-backups",
            "size": 1945663,
            "sizeFormatted": "1.86 MB",
            "fileExists": True,
        }
    ],
    "count": 1,
    "nextToken": None,
    "message": "Found 1 database backup(s)",
}


def _error(description: str, message: str) -> OpenApiResponse:
    return OpenApiResponse(
        response=Seed000Error,
        description=description,
        examples=[OpenApiExample(description, value={"error": message})],
    )


def _path(name: str, description: str, **kwargs) -> OpenApiParameter:
    return OpenApiParameter(
        name, OpenApiTypes.STR, OpenApiParameter.PATH, description=description, **kwargs
    )


class Seed000BackupListView(TenantViewSetMixin, DialectAPIView):
    """List backups for an environment (seed 000)."""

    error_body = staticmethod(render_seed000_error)

    def initial(self, request, *args, **kwargs):
        # The path names the organisation, so a user's JWT or session acts in it (an
        # explicit X-Organization header still wins; a token acts in its own).
        request.META.setdefault(ORGANISATION_HEADER, kwargs.get("organisation", ""))
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="seed000_list_environment_backups",
        summary="List backups for an environment",
        description=(
            "Backups (database or filesystem) of the environment with status, size and "
            "metadata. A `full` backup holds both and is listed under each type."
        ),
        tags=["seed 000: environment backups"],
        parameters=[
            _path("organisation", "The organisation (slug or UUID)"),
            _path("application", "The application (project slug or UUID)"),
            _path("environment", "The environment (slug or UUID)"),
            _path("type", "The backup type", enum=list(TYPES)),
            Seed000Query,
            *filter_parameters(FILTERS, exclude=("holds",)),
        ],
        responses={
            200: OpenApiResponse(
                Seed000BackupList,
                description="List of backups",
                examples=[OpenApiExample("Found", value=EXAMPLE)],
            ),
            400: _error("Invalid query parameter", "createdBefore: Enter an ISO 8601 date-time."),
            401: _error(
                "Missing or invalid token", "Authentication credentials were not provided."
            ),
            403: _error("Role too low", "This action needs the viewer role."),
            404: _error("Unknown organisation, application or environment", "Not found."),
            422: _error("Invalid backup type", TYPE_ERROR),
        },
    )
    def get(self, request, organisation: str, application: str, environment: str, type: str):  # noqa: A002
        if type not in TYPES:
            raise Unprocessable(TYPE_ERROR)
        tenant_org = self.tenant.organisation
        if organisation not in (tenant_org.slug, str(tenant_org.id)):
            raise NotFound(f"Organisation {organisation} not found.")
        env = environment_get(organisation=tenant_org, reference=environment, project=application)
        query = Seed000Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        cursor = None
        if params.get("nextToken"):
            cursor = decode_cursor(params["nextToken"], param="nextToken")
        queryset = backups_filter(
            queryset=backups_for_environment(organisation=tenant_org, environment=env),
            params={**request.query_params.dict(), "type": type},
            dialect=FILTERS,
        )
        page = keyset_paginate(
            queryset, limit=params["limit"], cursor=cursor, order=params["order"]
        )
        backups = Seed000Backup(page.items, many=True).data
        return Response(
            {
                "backups": backups,
                "count": len(backups),
                "nextToken": page.next_cursor,
                "message": f"Found {len(backups)} {type} backup(s)",
            }
        )
