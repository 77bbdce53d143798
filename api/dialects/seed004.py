"""Seed 004: the backups of one database, with their steps.

``GET /database/{databaseId}/backup``

Pages by ``page``/``page_size``; ``startId`` keeps only backups created after that one.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.base.formats import iso_seconds_z
from api.base.pagination import MAX_LIMIT, MAX_PAGE, created_after_backup, page_number_paginate
from api.base.schema import DefaultErrorSerializer, enum_field
from api.base.strict import StrictQuerySerializer
from api.base.views import DialectAPIView
from backups.models import Backup, BackupStatus
from backups.selectors import backups_for_database, backups_for_organisation, database_get
from organizations.tenancy import TenantViewSetMixin

# API.md's state mapping.
STATES = {
    BackupStatus.SCHEDULED: "QUEUED",
    BackupStatus.IN_PROGRESS: "BUILDING",
    BackupStatus.COMPLETED: "READY",
    BackupStatus.FAILED: "BUILD_ERROR",
    BackupStatus.ABORTING: "CANCELING",
    BackupStatus.ABORTED: "CANCELED",
    BackupStatus.DELETING: "DELETING",
    BackupStatus.DELETED: "DELETED",
    BackupStatus.NOT_SUPPORTED: "BUILD_ERROR",
}
# status_details.status: how the request that made (or deletes) the backup went.
REQUEST_STATUSES = {
    BackupStatus.SCHEDULED: "QUEUED",
    BackupStatus.IN_PROGRESS: "ONGOING",
    BackupStatus.COMPLETED: "SUCCESS",
    BackupStatus.FAILED: "ERROR",
    BackupStatus.NOT_SUPPORTED: "ERROR",
    BackupStatus.ABORTING: "CANCELING",
    BackupStatus.ABORTED: "CANCELED",
    BackupStatus.DELETING: "ONGOING",
    BackupStatus.DELETED: "SUCCESS",
}
STEP_STATUSES = ("SUCCESS", "RUNNING", "ERROR")


class Seed004Query(StrictQuerySerializer):
    page = serializers.IntegerField(min_value=1, max_value=MAX_PAGE, default=1)
    page_size = serializers.IntegerField(
        min_value=1, default=20, help_text=f"At most {MAX_LIMIT}; larger is clamped."
    )
    startId = serializers.UUIDField(  # noqa: N815 - the document's casing
        required=False, help_text="Starting point after which to return results."
    )

    def validate_page_size(self, value: int) -> int:
        return min(value, MAX_LIMIT)


class Seed004StatusDetails(serializers.Serializer):
    action = enum_field("Seed004Action", ["DEPLOY", "DELETE"])
    status = enum_field("Seed004RequestStatus", sorted(set(REQUEST_STATUSES.values())))
    sub_action = enum_field("Seed004SubAction", ["NONE"])


class Seed004Step(serializers.Serializer):
    step_name = serializers.CharField(help_text="DUMP, COMPRESS, UPLOAD, VERIFY…")
    status = enum_field("Seed004StepStatus", STEP_STATUSES)
    duration_sec = serializers.FloatField(allow_null=True)


class Seed004Steps(serializers.Serializer):
    total_duration_sec = serializers.FloatField(
        allow_null=True, help_text="From start to completion (so far, while running)."
    )
    total_computing_duration_sec = serializers.FloatField(help_text="The steps' durations summed.")
    details = Seed004Step(many=True)


class Seed004Status(serializers.Serializer):
    id = serializers.UUIDField()
    state = enum_field("Seed004State", sorted(set(STATES.values())))
    service_deployment_status = enum_field(
        "Seed004ServiceDeploymentStatus", ["NEVER_DEPLOYED", "UP_TO_DATE"]
    )
    is_part_last_deployment = serializers.BooleanField(
        help_text="Whether this is the database's latest backup."
    )
    status_details = Seed004StatusDetails()
    deployment_request_id = serializers.CharField(allow_null=True, help_text="The worker task id.")
    deployment_requests_count = serializers.IntegerField()
    last_deployment_date = serializers.DateTimeField(allow_null=True)
    steps = Seed004Steps()
    execution_id = serializers.CharField()


class Seed004Backup(serializers.Serializer):
    id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    name = serializers.CharField()
    message = serializers.CharField(help_text="The last log line, or the error.")
    updated_at = serializers.DateTimeField()
    status = Seed004Status()

    def to_representation(self, backup: Backup) -> dict:
        latest_id = self.context.get("latest_id")
        return {
            "id": str(backup.id),
            "created_at": iso_seconds_z(backup.created_at),
            "name": backup.name,
            "message": last_line(backup.message),
            "updated_at": iso_seconds_z(backup.updated_at),
            "status": {
                "id": str(backup.id),
                "state": STATES.get(backup.status, "UNKNOWN"),
                "service_deployment_status": (
                    "UP_TO_DATE" if backup.status == BackupStatus.COMPLETED else "NEVER_DEPLOYED"
                ),
                "is_part_last_deployment": backup.id == latest_id,
                "status_details": {
                    "action": "DELETE"
                    if backup.status in (BackupStatus.DELETING, BackupStatus.DELETED)
                    else "DEPLOY",
                    "status": REQUEST_STATUSES.get(backup.status, "QUEUED"),
                    "sub_action": "NONE",
                },
                "deployment_request_id": backup.task_id or None,
                "deployment_requests_count": 1,
                "last_deployment_date": iso_seconds_z(backup.started_at or backup.created_at),
                "steps": steps(backup),
                "execution_id": backup.task_id or str(backup.id),
            },
        }


def last_line(message: str) -> str:
    lines = [line for line in (message or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def steps(backup: Backup) -> dict:
    details = []
    for phase in backup.phases or []:
        if not isinstance(phase, dict):
            continue
        duration = phase.get("duration_sec")
        details.append(
            {
                "step_name": str(phase.get("name", "")),
                "status": phase.get("status")
                if phase.get("status") in STEP_STATUSES
                else "RUNNING",
                "duration_sec": float(duration) if duration is not None else None,
            }
        )
    total = None
    if backup.started_at is not None and backup.completed_at is not None:
        total = round((backup.completed_at - backup.started_at).total_seconds(), 3)
    computing = round(sum(step["duration_sec"] or 0.0 for step in details), 3)
    return {
        "total_duration_sec": total if total is not None else computing,
        "total_computing_duration_sec": computing,
        "details": details,
    }


class Seed004BackupList(serializers.Serializer):
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    results = Seed004Backup(many=True)


EXAMPLE = {
    "page": 1,
    "page_size": 20,
    "results": [
        {
            "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
            "created_at": "2023-11-07T05:31:56Z",
            "name": "orders-2023-11-07T05-31-56Z",
            "message": "Uploaded 12.3 MB to 1 destination",
            "updated_at": "2023-11-07T05:33:12Z",
            "status": {
                "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
                "state": "READY",
                "service_deployment_status": "UP_TO_DATE",
                "is_part_last_deployment": True,
                "status_details": {"action": "DEPLOY", "status": "SUCCESS", "sub_action": "NONE"},
                "deployment_request_id": "9a1d3e0c2f6b4b8e8a4f0d2c1b3a5e7f",
                "deployment_requests_count": 1,
                "last_deployment_date": "2023-11-07T05:31:57Z",
                "steps": {
                    "total_duration_sec": 75.2,
                    "total_computing_duration_sec": 74.9,
                    "details": [
                        {"step_name": "DUMP", "status": "SUCCESS", "duration_sec": 61.0},
                        {"step_name": "UPLOAD", "status": "SUCCESS", "duration_sec": 13.9},
                    ],
                },
                "execution_id": "9a1d3e0c2f6b4b8e8a4f0d2c1b3a5e7f",
            },
        }
    ],
}


def _error(description: str, code: str, message: str) -> OpenApiResponse:
    return OpenApiResponse(
        response=DefaultErrorSerializer,
        description=description,
        examples=[OpenApiExample(description, value={"error": {"code": code, "message": message}})],
    )


class Seed004DatabaseBackupsView(TenantViewSetMixin, DialectAPIView):
    """List a database's backups (seed 004)."""

    @extend_schema(
        operation_id="seed004_list_database_backups",
        summary="List database backups",
        description="The database's backups, newest first, with their steps (phases).",
        tags=["seed 004: database backups"],
        parameters=[
            OpenApiParameter(
                "databaseId", OpenApiTypes.UUID, OpenApiParameter.PATH, description="Database ID"
            ),
            Seed004Query,
        ],
        responses={
            200: OpenApiResponse(
                Seed004BackupList,
                description="List backups",
                examples=[OpenApiExample("Backups", value=EXAMPLE)],
            ),
            400: _error(
                "Invalid query parameter", "invalid_input", "startId: No backup with id …."
            ),
            401: _error("Missing or invalid token", "unauthenticated", "Invalid token."),
            403: _error("Role too low", "forbidden", "This action needs the viewer role."),
            404: _error("Unknown database", "not_found", "Database not found."),
        },
    )
    def get(self, request, databaseId: str):  # noqa: N803 - the document's name
        organisation = self.tenant.organisation
        database = database_get(organisation=organisation, reference=databaseId)
        query = Seed004Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        all_backups = backups_for_database(organisation=organisation, database=database)
        queryset = all_backups
        if params.get("startId"):
            queryset = created_after_backup(
                queryset,
                scope=backups_for_organisation(organisation=organisation),
                backup_id=str(params["startId"]),
            )
        page = page_number_paginate(queryset, page=params["page"], per_page=params["page_size"])
        latest_id = all_backups.prefetch_related(None).values_list("id", flat=True).first()
        results = Seed004Backup(page.items, many=True, context={"latest_id": latest_id}).data
        return Response({"page": page.page, "page_size": page.per_page, "results": results})
