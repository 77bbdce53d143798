"""Seed 003 restore endpoints.

Thin over ``restores.services.restore_request`` (which validates the target, the
backup's state and the PITR window, then enqueues the work), ``restores.selectors``
(``restore_plan``, the same validation and mapping without side effects)
and ``pitr.coverage.pitr_coverage``.
"""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.response import Response

from api.base import sse
from api.base.pagination import offset_page, paged_body
from api.base.schema import OFFSET_PARAM, errors, limit_param, page_of, uuid_path
from backups import selectors as backup_selectors
from config.errors import InvalidInput, NotFound, fields_spelled
from organizations.models import Role
from organizations.tenancy import TenantViewSet, TenantViewSetMixin
from pitr.coverage import pitr_coverage
from restores import selectors as restore_selectors
from restores import services as restore_services
from restores.api.serializers import (
    Seed003PitrCoverageSerializer,
    Seed003RestorePlanSerializer,
    Seed003RestoreRequestSerializer,
    Seed003RestoreSerializer,
)

TAGS = ["seed 003: restores"]
NEW_DISABLED = "targetType 'new' is disabled until orchestration exists"
# The services name the request's fields as the domain does; seed 003 spells them so.
SEED003_FIELDS = {
    "target_type": "targetType",
    "target_environment": "targetEnvironmentId",
    "target_database": "targetDatabaseId",
    "pitr_timestamp": "pitrTimestamp",
}


def seed003_field(name: str) -> str:
    return SEED003_FIELDS.get(name, name)


def _request_arguments(data: dict) -> dict:
    """The restore (and plan) arguments a validated seed 003 body gives."""
    return {
        "target_type": data["targetType"],
        "target_environment": data.get("targetEnvironmentId"),
        "target_database": data.get("targetDatabaseId"),
        "pitr_timestamp": data.get("pitrTimestamp"),
    }


class RestoreViewSet(TenantViewSet):
    required_roles = {"create": Role.OPERATOR, "plan": Role.OPERATOR}
    input_serializers = {
        "create": Seed003RestoreRequestSerializer,
        "plan": Seed003RestoreRequestSerializer,
    }

    def _environment(self, reference):
        return backup_selectors.environment_get(
            organisation=self.tenant.organisation, reference=reference
        )

    @extend_schema(
        operation_id="backup_restore_create",
        summary="Trigger a backup restore",
        description="Validates the restore target and enqueues an asynchronous restore job: "
        "verify the artifact, back up the target first, load into scratch copies, compare "
        "row counts, swap. Needs the operator role. With `pitrTimestamp` (a backup of one "
        "PostgreSQL database, or one of its base backups, whose WAL Strongbox archives) the "
        "database is recovered to that moment from the base backup and archived WAL in a "
        "private copy, then dumped from it into the target through the same scratch, check "
        "and swap steps; the restore log's `RECOVER` phase names the base backup and where "
        "recovery stopped. `targetType` `new` is a 422; a `pitrTimestamp` outside the PITR "
        "coverage is a 422 stating the window, and with a backup of any other kind a 422; a "
        "backup that is not completed is a 422; a restore already running into the target "
        "is a 409. `targetDatabaseId` (a backup of one database) names the database to "
        "replace, as in `POST /api/backups/{id}/restore-plan`; the answer's `members` and "
        "`warnings` are that plan, and the restore does exactly it.",
        parameters=[uuid_path("id", "Backup UUID")],
        request=Seed003RestoreRequestSerializer,
        responses={
            202: Seed003RestoreSerializer,
            **errors(400, 404, 409, 422, e422=NEW_DISABLED),
        },
        examples=[
            OpenApiExample(
                "To a point in time, in place",
                request_only=True,
                value={
                    "backupId": "8d1e3c2a-6a55-4a9b-9e1f-3c1d2b4a5e6f",
                    "targetType": "same",
                    "pitrTimestamp": "2026-11-20T09:59:30Z",
                },
            ),
            OpenApiExample(
                "Into another environment",
                request_only=True,
                value={
                    "backupId": "8d1e3c2a-6a55-4a9b-9e1f-3c1d2b4a5e6f",
                    "targetType": "other",
                    "targetEnvironmentId": "0b6f1c2d-0000-4000-8000-000000000002",
                },
            ),
        ],
        tags=TAGS,
    )
    def create(self, request, id):  # noqa: A002 - the documented name
        backup, data = self._restore_body(request, id)
        with fields_spelled(seed003_field):
            restore = restore_services.restore_request(
                backup=backup, **_request_arguments(data), user=self.tenant.user
            )
        restore = restore_selectors.restore_get(
            organisation=self.tenant.organisation, restore_id=restore.pk
        )
        return Response(Seed003RestoreSerializer(restore).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="backup_restore_plan",
        summary="Plan a backup restore",
        description="What `POST /api/backups/{id}/restore` would do with the same body, "
        "without doing anything: which member of the backup goes into which database of the "
        "target environment (id, name, engine, version), and warnings (a database of another "
        "name, another major version, the backup's own environment as the target, the "
        "fallback to the target's only database of the same engine). `targetDatabaseId` "
        "chooses the database for a backup of one database: one of another environment is a "
        "400, of another engine family a 422, with a full or files backup a 422. Refusals are "
        "those of the restore itself; a restore already running into the target is a warning "
        "here. Needs the operator role.",
        parameters=[uuid_path("id", "Backup UUID")],
        request=Seed003RestoreRequestSerializer,
        responses={200: Seed003RestorePlanSerializer, **errors(400, 404, 422, e422=NEW_DISABLED)},
        examples=[
            OpenApiExample(
                "Into a chosen database",
                request_only=True,
                value={
                    "targetType": "other",
                    "targetEnvironmentId": "0b6f1c2d-0000-4000-8000-000000000002",
                    "targetDatabaseId": "77aa0c2d-0000-4000-8000-000000000003",
                },
            ),
            OpenApiExample(
                "Plan",
                response_only=True,
                value={
                    "members": [
                        {
                            "label": "Analytics",
                            "source": {
                                "databaseId": "77aa0c2d-0000-4000-8000-000000000001",
                                "name": "Main",
                                "engine": "postgresql",
                                "version": "15.4",
                            },
                            "target": {
                                "environmentId": "0b6f1c2d-0000-4000-8000-000000000002",
                                "databaseId": "77aa0c2d-0000-4000-8000-000000000003",
                                "name": "Analytics",
                                "engine": "postgresql",
                                "version": "16.2",
                            },
                        }
                    ],
                    "warnings": [
                        "Main goes into Analytics, a database with another name.",
                        "Main was backed up from PostgreSQL 15.4; Analytics runs PostgreSQL "
                        "16.2, another major version.",
                    ],
                },
            ),
        ],
        tags=TAGS,
    )
    def plan(self, request, id):  # noqa: A002 - the documented name
        backup, data = self._restore_body(request, id)
        with fields_spelled(seed003_field):
            plan = restore_selectors.restore_plan(backup=backup, **_request_arguments(data))
        return Response(
            Seed003RestorePlanSerializer(
                {"members": plan.records(), "warnings": plan.warnings}
            ).data
        )

    def _restore_body(self, request, id):  # noqa: A002
        """The backup of the path and the validated body of a restore (or its plan)."""
        backup = backup_selectors.backup_get(organisation=self.tenant.organisation, backup_id=id)
        body = Seed003RestoreRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if data.get("backupId") and data["backupId"] != backup.pk:
            message = "Must be the id of the backup in the path (or left out)."
            raise InvalidInput(f"backupId: {message}", fields={"backupId": [message]})
        if data["targetType"] == "other":
            self._check_target(data.get("targetEnvironmentId"))
        return backup, data

    def _check_target(self, reference) -> None:
        """A target environment is a body field: missing or unknown is a 400 naming it."""
        if not reference:
            message = 'Required when targetType is "other".'
            raise InvalidInput(
                f"targetEnvironmentId: {message}", fields={"targetEnvironmentId": [message]}
            )
        try:
            self._environment(reference)
        except NotFound:
            message = "No such environment in this organisation."
            raise InvalidInput(
                f"targetEnvironmentId: {message}", fields={"targetEnvironmentId": [message]}
            ) from None

    @extend_schema(
        operation_id="environment_pitr_retrieve",
        summary="Get PITR coverage",
        description="Returns the point-in-time recovery coverage window and WAL archiving "
        "status for the environment: the window every PostgreSQL database of the environment "
        "can be recovered to, and per database its windows, base backups, archiver status "
        "and WAL gaps.",
        parameters=[uuid_path("env_id", "Environment UUID")],
        responses={200: Seed003PitrCoverageSerializer, **errors(404)},
        tags=TAGS,
    )
    def pitr(self, request, env_id):
        return Response(pitr_coverage(environment=self._environment(env_id)))

    @extend_schema(
        operation_id="environment_restore_logs_list",
        summary="List environment restore logs",
        description="Returns restore logs where the target or source environment matches the "
        "given environment, newest first.",
        parameters=[uuid_path("environmentId", "Environment UUID"), limit_param(50), OFFSET_PARAM],
        responses={
            200: page_of(Seed003RestoreSerializer, "Seed003RestorePage"),
            **errors(400, 404),
        },
        tags=TAGS,
    )
    def restore_logs(self, request, environmentId):  # noqa: N803 - the documented name
        environment = self._environment(environmentId)
        restores = restore_selectors.restores_for_environment(
            organisation=self.tenant.organisation, environment=environment
        )
        items, count, limit, offset = offset_page(request, restores, default_limit=50)
        data = Seed003RestoreSerializer(items, many=True).data
        return Response(paged_body(data, count, limit, offset))

    @extend_schema(
        operation_id="restore_retrieve",
        summary="Get a restore",
        parameters=[uuid_path("id", "Restore UUID")],
        responses={200: Seed003RestoreSerializer, **errors(404)},
        tags=TAGS,
    )
    def retrieve(self, request, id):  # noqa: A002
        restore = restore_selectors.restore_get(
            organisation=self.tenant.organisation, restore_id=id
        )
        return Response(Seed003RestoreSerializer(restore).data)


# --- progress streams --------------------------------------------------------------------------


class BackupRestoreProgressView(TenantViewSetMixin, sse.ProgressStreamView):
    """The latest restore of a backup."""

    @sse.stream_schema(
        "Stream restore progress (SSE)",
        "Streams restore progress events as Server-Sent Events until the restore completes "
        "or fails (the latest restore of this backup).",
        "Backup",
    )
    def get(self, request, id):  # noqa: A002
        return super().get(request, id)

    def subject(self, id) -> sse.Subject:  # noqa: A002
        organisation = self.tenant.organisation
        backup = backup_selectors.backup_get(organisation=organisation, backup_id=id)
        restore = restore_selectors.restore_latest_for_backup(
            organisation=organisation, backup=backup
        )
        if restore is None:
            raise NotFound("This backup has not been restored.")
        return sse.Subject(restore_selectors.restore_progress_results, restore.pk)


class RestoreProgressView(TenantViewSetMixin, sse.ProgressStreamView):
    @sse.stream_schema(
        "Stream the progress of a restore (SSE)",
        "Streams the restore's progress events as Server-Sent Events until it completes or fails.",
        "Restore",
    )
    def get(self, request, id):  # noqa: A002
        return super().get(request, id)

    def subject(self, id) -> sse.Subject:  # noqa: A002
        restore = restore_selectors.restore_get(
            organisation=self.tenant.organisation, restore_id=id
        )
        return sse.Subject(restore_selectors.restore_progress_results, restore.pk)
