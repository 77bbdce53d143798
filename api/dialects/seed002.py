"""Seed 002: the organisation's database backups.

``GET /v1/database-backups``

Pages by ``marker`` (the id of the previous page's last item), upper-case statuses,
errors as ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.base.formats import iso_seconds_z
from api.base.pagination import (
    EXACT_TOTAL_UP_TO,
    MAX_LIMIT,
    Keyset,
    count_total,
    keyset_paginate,
    marker_cursor,
    previous_marker,
)
from api.base.schema import enum_field
from api.base.strict import StrictQuerySerializer
from api.base.views import DialectAPIView
from api.dialects.filters import filter_parameters
from backups.filters import FilterDialect, backups_filter
from backups.models import Backup, BackupStatus
from backups.selectors import database_backups_for_organisation, primary_copy
from config.errors import ApplicationError
from organizations.tenancy import TenantViewSetMixin

# seed 002's status words, one per canonical status.
STATUSES = {status.upper().replace("-", "_"): status for status in BackupStatus.values}
# The seed's own example filter value: a usable backup, a synonym of COMPLETED (filters only;
# a backup's status is always one of STATUSES).
FILTER_STATUSES = {**STATUSES, "ACTIVE": BackupStatus.COMPLETED}

FILTERS = FilterDialect(
    params={
        "name": "name",
        "status": "status",
        "database": "instance_id",
        "engine": "datastore_type",
    },
    statuses=FILTER_STATUSES,
)

# A stable id per (engine, version): the document has one, Strongbox has no table of versions.
VERSION_NAMESPACE = uuid.UUID("6f1c6a39-1d1f-4c1e-9a53-2d2f0d7c5b10")


def render_seed002_error(error: ApplicationError) -> dict:
    return {"error": {"code": error.code, "message": error.message}}


def location_ref(backup: Backup) -> str | None:
    """Where the artifact is: ``s3://bucket/key``, or ``local://<destination id>/key``."""
    copy = primary_copy(backup)
    if copy is None:
        return None
    destination = copy.destination
    if destination.bucket_name:
        return f"s3://{destination.bucket_name}/{copy.key}"
    return f"{destination.kind}://{destination.id}/{copy.key}"


class Seed002Query(StrictQuerySerializer):
    limit = serializers.IntegerField(
        min_value=1,
        default=20,
        help_text=f"Maximum number of items to return (at most {MAX_LIMIT}; larger is clamped).",
    )
    marker = serializers.UUIDField(
        required=False, help_text="ID of the last item from the previous page (for pagination)."
    )

    def validate_limit(self, value: int) -> int:
        return min(value, MAX_LIMIT)


class Seed002Datastore(serializers.Serializer):
    type = serializers.CharField()
    version = serializers.CharField()
    version_id = serializers.UUIDField()


class Seed002DatabaseBackup(serializers.Serializer):
    id = serializers.UUIDField()
    crn = serializers.CharField(help_text="`crn:{region}:database:backup:{id}`")
    name = serializers.CharField()
    description = serializers.CharField()
    status = enum_field("Seed002BackupStatus", STATUSES)
    instance_id = serializers.UUIDField(help_text="The database this backup is of.")
    parent_id = serializers.UUIDField(
        allow_null=True, help_text="The base backup of an incremental chain, else null."
    )
    size = serializers.IntegerField()
    datastore = Seed002Datastore()
    location_ref = serializers.CharField(allow_null=True, help_text="Destination and key.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, backup: Backup) -> dict:
        region = settings.STRONGBOX_REGION
        return {
            "id": str(backup.id),
            "crn": f"crn:{region}:database:backup:{backup.id}",
            "name": backup.name,
            "description": backup.description,
            "status": backup.status.upper().replace("-", "_"),
            "instance_id": str(backup.database_id),
            "parent_id": str(backup.parent_id) if backup.parent_id else None,
            "size": backup.size or 0,
            "datastore": {
                "type": backup.engine,
                "version": backup.engine_version,
                "version_id": str(
                    uuid.uuid5(VERSION_NAMESPACE, f"{backup.engine}:{backup.engine_version}")
                ),
            },
            "location_ref": location_ref(backup),
            "created_at": iso_seconds_z(backup.created_at),
            "updated_at": iso_seconds_z(backup.updated_at),
        }


class Seed002Meta(serializers.Serializer):
    total = serializers.IntegerField(
        help_text=(
            f"Backups matching the filters: exact up to {EXACT_TOTAL_UP_TO:,}, "
            "the database's estimate above."
        )
    )
    limit = serializers.IntegerField()
    marker = serializers.UUIDField(
        allow_null=True, help_text="The marker of the next page (null on the last page)."
    )
    has_more = serializers.BooleanField()


class Seed002Links(serializers.Serializer):
    self = serializers.URLField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class Seed002DatabaseBackupList(serializers.Serializer):
    database_backups = Seed002DatabaseBackup(many=True)
    meta = Seed002Meta()
    links = Seed002Links()


class Seed002ErrorDetail(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class Seed002Error(serializers.Serializer):
    error = Seed002ErrorDetail()


EXAMPLE = {
    "database_backups": [
        {
            "id": "550e8400-e29b-41d4-a716-446655440000",
            "crn": "crn:spo1:database:backup:550e8400-e29b-41d4-a716-446655440000",
            "name": "backup-2024-01-15",
            "description": "string",
            "status": "COMPLETED",
            "instance_id": "550e8400-e29b-41d4-a716-446655440001",
            "parent_id": "550e8400-e29b-41d4-a716-446655440000",
            "size": 0,
            "datastore": {
                "type": "postgresql",
                "version": "15.4",
                "version_id": "550e8400-e29b-41d4-a716-446655440000",
            },
            "location_ref": "string",
            "created_at": "2024-01-15T10:30:00Z",
            "updated_at": "2024-01-15T10:30:00Z",
        }
    ],
    "meta": {
        "total": 150,
        "limit": 20,
        "marker": "550e8400-e29b-41d4-a716-446655440000",
        "has_more": True,
    },
    "links": {
        "self": "https://api.spo1.mycloud.com/v1/database-backups?limit=20",
        "next": "https://api.spo1.mycloud.com/v1/database-backups?limit=20"
        "&marker=550e8400-e29b-41d4-a716-446655440000",
        "previous": "https://api.spo1.mycloud.com/v1/database-backups?limit=20"
        "&marker=440e8400-e29b-41d4-a716-446655440000",
    },
}


def _error(description: str, code: str, message: str) -> OpenApiResponse:
    return OpenApiResponse(
        response=Seed002Error,
        description=description,
        examples=[OpenApiExample(description, value={"error": {"code": code, "message": message}})],
    )


def _link(request, marker: str | None) -> str:
    params = request.query_params.copy()
    params.pop("marker", None)
    if marker is not None:
        params["marker"] = marker
    query = params.urlencode()
    return request.build_absolute_uri(request.path + (f"?{query}" if query else ""))


class Seed002DatabaseBackupListView(TenantViewSetMixin, DialectAPIView):
    """List database backups of the caller's organisation (seed 002)."""

    error_body = staticmethod(render_seed002_error)

    @extend_schema(
        operation_id="seed002_list_database_backups",
        summary="List database backups",
        description=(
            "List all database backups in the current organization, newest first: one item "
            "per backup of one database (files archives and `full` backups are not listed)."
        ),
        tags=["seed 002: database backups"],
        parameters=[Seed002Query, *filter_parameters(FILTERS)],
        responses={
            200: OpenApiResponse(
                Seed002DatabaseBackupList,
                description="List of database backups",
                examples=[OpenApiExample("Database backups", value=EXAMPLE)],
            ),
            400: _error(
                "Invalid query parameter",
                "invalid_input",
                "status: Unknown value 'DONE'; allowed values: SCHEDULED, IN_PROGRESS, ….",
            ),
            401: _error(
                "Authentication required or token invalid",
                "unauthenticated",
                "Authentication credentials were not provided.",
            ),
            403: _error("Role too low", "forbidden", "This action needs the viewer role."),
            500: _error("Internal server error", "internal_error", "Internal server error."),
        },
    )
    def get(self, request):
        organisation = self.tenant.organisation
        query = Seed002Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit = query.validated_data["limit"]
        marker = request.query_params.get("marker") or None
        scope = database_backups_for_organisation(organisation=organisation)
        queryset = backups_filter(queryset=scope, params=request.query_params, dialect=FILTERS)
        cursor = marker_cursor(scope, marker) if marker else None
        page = keyset_paginate(queryset, limit=limit, cursor=cursor)
        next_marker = str(page.items[-1].id) if page.has_next else None

        previous = None
        if cursor is not None:
            first = Keyset.of(page.items[0]) if page.items else cursor.key
            exists, previous_at = previous_marker(
                queryset, first=first, limit=limit, inclusive=not page.items
            )
            previous = _link(request, previous_at) if exists else None
        return Response(
            {
                "database_backups": Seed002DatabaseBackup(page.items, many=True).data,
                "meta": {
                    "total": count_total(queryset),
                    "limit": limit,
                    "marker": next_marker,
                    "has_more": page.has_next,
                },
                "links": {
                    "self": request.build_absolute_uri(),
                    "next": _link(request, next_marker) if next_marker else None,
                    "previous": previous,
                },
            }
        )
