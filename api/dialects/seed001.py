"""Seed 001: the backups stored in a backup destination.

``GET /v1/backup-destinations/{backupDestinationId}/backups``

Pages by ``page``/``per_page``, or by the keyset ``cursor`` (which wins when given).
Needs the viewer role ("Account > BackupDestinations > General > Read").
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.base.formats import iso_millis_z
from api.base.pagination import (
    MAX_LIMIT,
    MAX_PAGE,
    Cursor,
    Keyset,
    decode_cursor,
    encode_cursor,
    keyset_paginate,
    page_number_paginate,
)
from api.base.schema import DefaultErrorSerializer, enum_field
from api.base.strict import StrictQuerySerializer
from api.base.views import DialectAPIView
from backups.filters import ENGINE_VALUES
from backups.models import DELETION_STATUSES, Backup, BackupKind, BackupStatus
from backups.selectors import backups_for_destination, destination_get
from organizations.models import Role
from organizations.tenancy import TenantViewSetMixin

RULE_KEYS = ("interval", "minute", "hour", "day")
# The seed's closed status enum: a backup being deleted is not listed (the selector).
STATUSES = [status for status in BackupStatus.values if status not in DELETION_STATUSES]
# A backup of no one database (no addon) names its kind as its addon type.
KIND_ADDON_TYPES = {BackupKind.FULL: "full", BackupKind.FILESYSTEM: "filesystem"}
ADDON_TYPES = [name for name in ENGINE_VALUES if name != "files"] + list(KIND_ADDON_TYPES.values())


class Seed001Query(StrictQuerySerializer):
    per_page = serializers.IntegerField(
        min_value=1,
        default=20,
        help_text=f"Results per request (at most {MAX_LIMIT}; larger is clamped).",
    )
    page = serializers.IntegerField(
        min_value=1, max_value=MAX_PAGE, default=1, help_text="The page number to access."
    )
    cursor = serializers.CharField(
        required=False,
        help_text="The cursor returned by the previous page; when given it wins over `page`.",
    )

    def validate_per_page(self, value: int) -> int:
        return min(value, MAX_LIMIT)


class Seed001Ref(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()


class Seed001Source(serializers.Serializer):
    type = enum_field("Seed001SourceType", ["global"])


class Seed001Config(serializers.Serializer):
    addonVersion = serializers.CharField(  # noqa: N815
        allow_null=True,
        help_text="The database engine's version; null for a full or files backup, "
        "or when the version is not known.",
    )
    addonType = enum_field(  # noqa: N815
        "Seed001AddonType",
        ADDON_TYPES,
        help_text="The database engine; `full` or `filesystem` for a backup of no one database.",
    )
    source = Seed001Source()
    size = serializers.CharField(help_text="The size of the backup, in bytes.")


class Seed001Schedule(serializers.Serializer):
    interval = enum_field("Seed001Interval", ["hourly", "daily", "weekly"])
    minute = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=59))
    hour = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=23), required=False
    )
    day = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        required=False,
        help_text="0 = Monday, 6 = Sunday.",
    )


class Seed001Backup(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    status = enum_field("Seed001BackupStatus", STATUSES)
    project = Seed001Ref()
    addon = Seed001Ref(allow_null=True, help_text="The database; null for a full or files backup.")
    config = Seed001Config()
    schedules = Seed001Schedule(many=True)
    expiredBy = serializers.FloatField(  # noqa: N815
        allow_null=True, help_text="Expiry, in epoch milliseconds."
    )
    createdAt = serializers.DateTimeField()  # noqa: N815
    completedAt = serializers.DateTimeField(allow_null=True)  # noqa: N815

    def to_representation(self, backup: Backup) -> dict:
        project = backup.environment.project
        database = backup.database
        kind_type = KIND_ADDON_TYPES.get(backup.kind)
        return {
            "id": str(backup.id),
            "name": backup.name,
            "status": backup.status,
            "project": {"id": str(project.id), "name": project.name},
            "addon": (
                {"id": str(database.id), "name": database.name}
                if database and kind_type is None
                else None
            ),
            "config": {
                # A full backup's engine_version lists every database's; the seed's is one.
                "addonVersion": (backup.engine_version or None) if kind_type is None else None,
                "addonType": kind_type or backup.engine,
                "source": {"type": "global"},
                "size": str(backup.size or 0),
            },
            "schedules": [
                {key: rule[key] for key in RULE_KEYS if key in rule}
                for rule in backup.schedule_rules or []
            ],
            "expiredBy": backup.expires_at.timestamp() * 1000 if backup.expires_at else None,
            "createdAt": iso_millis_z(backup.created_at),
            "completedAt": iso_millis_z(backup.completed_at),
        }


class Seed001Pagination(serializers.Serializer):
    hasNextPage = serializers.BooleanField()  # noqa: N815
    cursor = serializers.CharField(
        required=False, help_text="The cursor of the next page (only when there is one)."
    )
    count = serializers.IntegerField(help_text="The number of results returned by this request.")


class Seed001BackupList(serializers.Serializer):
    data = Seed001Backup(many=True)
    pagination = Seed001Pagination()


EXAMPLE = {
    "data": [
        {
            "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
            "name": "Example Backup",
            "status": "completed",
            "project": {"id": "5b1e2f4a-6f0e-4a55-9d0e-0c2b1f6f1a11", "name": "Example Project"},
            "addon": {"id": "8f14e45f-ceea-467f-a0e6-b0b5b7a6f1a2", "name": "Example Addon"},
            "config": {
                "addonVersion": "4.4.8",
                "addonType": "mongodb",
                "source": {"type": "global"},
                "size": "1234",
            },
            "schedules": [{"interval": "weekly", "minute": [30], "hour": [18], "day": [4]}],
            "expiredBy": 1729232400000.0,
            "createdAt": "2021-01-20T11:19:53.175Z",
            "completedAt": "2021-01-20T11:19:54.494Z",
        }
    ],
    "pagination": {"hasNextPage": False, "count": 1},
}


def _error(description: str, code: str, message: str) -> OpenApiResponse:
    return OpenApiResponse(
        response=DefaultErrorSerializer,
        description=description,
        examples=[OpenApiExample(description, value={"error": {"code": code, "message": message}})],
    )


class Seed001DestinationBackupsView(TenantViewSetMixin, DialectAPIView):
    """List a backup destination's backups (seed 001)."""

    required_roles = {"get": Role.VIEWER}

    @extend_schema(
        operation_id="seed001_list_destination_backups",
        summary="List destinations backups",
        description=(
            "Lists the backups with a copy in this backup destination, newest first. "
            "Required permission: the viewer role (Account > BackupDestinations > General > Read)."
        ),
        tags=["seed 001: backup destinations"],
        parameters=[
            OpenApiParameter(
                "backupDestinationId",
                OpenApiTypes.UUID,
                OpenApiParameter.PATH,
                description="ID of the backup destination",
            ),
            Seed001Query,
        ],
        responses={
            200: OpenApiResponse(
                Seed001BackupList,
                description="A list of backups saved to this backup destination.",
                examples=[OpenApiExample("Backups", value=EXAMPLE)],
            ),
            400: _error("Invalid query parameter", "invalid_input", "per_page: Enter a number."),
            401: _error("Missing or invalid token", "unauthenticated", "Invalid token."),
            403: _error("Role too low", "forbidden", "This action needs the viewer role."),
            404: _error("Unknown destination", "not_found", "Backup destination not found."),
        },
    )
    def get(self, request, backupDestinationId: str):  # noqa: N803 - the document's name
        organisation = self.tenant.organisation
        destination = destination_get(organisation=organisation, reference=backupDestinationId)
        query = Seed001Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        queryset = backups_for_destination(organisation=organisation, destination=destination)
        per_page = params["per_page"]
        if params.get("cursor"):
            cursor = decode_cursor(params["cursor"], param="cursor")
            keyset = keyset_paginate(queryset, limit=per_page, cursor=cursor)
            items, next_cursor = keyset.items, keyset.next_cursor
        else:
            numbered = page_number_paginate(queryset, page=params["page"], per_page=per_page)
            items = numbered.items
            next_cursor = None
            if numbered.has_next and items:
                next_cursor = encode_cursor(Cursor(Keyset.of(items[-1])))
        pagination = {"hasNextPage": next_cursor is not None, "count": len(items)}
        if next_cursor is not None:
            pagination["cursor"] = next_cursor
        return Response({"data": Seed001Backup(items, many=True).data, "pagination": pagination})
