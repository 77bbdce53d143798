"""Seed 003 restore endpoints.

The restore trigger validates everything it can (tenancy, role, body, the PITR
window) and then answers 501 until restore orchestration lands. PITR coverage comes
from ``backups.pitr``; the restore logs and one restore are reads of the Restore model.
"""

from django.db.models import Q
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response

from backups import selectors as backup_selectors
from backups.models import BackupStatus
from backups.pitr import pitr_coverage, pitr_validate_timestamp
from config.errors import Conflict, InvalidInput, NotFound, NotImplementedYet, Unprocessable
from organizations.api.common import (
    OFFSET_PARAM,
    TenantViewSet,
    errors,
    get_or_404,
    limit_param,
    offset_page,
    page_of,
    paged_body,
    uuid_path,
)
from organizations.models import Role
from restores.api.serializers import (
    Seed003PitrCoverageSerializer,
    Seed003RestoreRequestSerializer,
    Seed003RestoreSerializer,
)
from restores.models import Restore

TAGS = ["seed 003: restores"]
NEW_DISABLED = "targetType 'new' is disabled until orchestration exists"
RESTORE_NOT_READY = (
    "Restores are not available through the API yet: the restore orchestration has not "
    "landed. The request was valid."
)


def _restores(viewset):
    return viewset.restrict(
        Restore.objects.select_related(
            "backup", "source_environment", "target_environment", "requested_by"
        )
    )


class RestoreViewSet(TenantViewSet):
    required_roles = {"create": Role.OPERATOR}
    input_serializers = {"create": Seed003RestoreRequestSerializer}

    def _environment(self, reference):
        return backup_selectors.environment_get(
            organisation=self.tenant.organisation, reference=reference
        )

    @extend_schema(
        operation_id="backup_restore_create",
        summary="Trigger a backup restore",
        description="Validates the restore target and enqueues an asynchronous restore job. "
        "Needs the operator role. **Until restore orchestration lands, a valid request "
        "answers 501.**",
        parameters=[uuid_path("id", "Backup UUID")],
        request=Seed003RestoreRequestSerializer,
        responses={
            202: Seed003RestoreSerializer,
            **errors(400, 404, 409, 422, 501, e422=NEW_DISABLED, e501=RESTORE_NOT_READY),
        },
        examples=[
            OpenApiExample(
                "Into another environment",
                request_only=True,
                value={
                    "backupId": "8d1e3c2a-6a55-4a9b-9e1f-3c1d2b4a5e6f",
                    "targetType": "other",
                    "targetEnvironmentId": "0b6f1c2d-0000-4000-8000-000000000002",
                },
            )
        ],
        tags=TAGS,
    )
    def create(self, request, id):  # noqa: A002 - the documented name
        organisation = self.tenant.organisation
        backup = backup_selectors.backup_get(organisation=organisation, backup_id=id)
        body = Seed003RestoreRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if data.get("backupId") and data["backupId"] != backup.pk:
            message = "Must be the id of the backup in the path (or left out)."
            raise InvalidInput(f"backupId: {message}", fields={"backupId": [message]})
        target_type = data["targetType"]
        if target_type == "new":
            raise Unprocessable(NEW_DISABLED, fields={"targetType": [NEW_DISABLED]})
        if target_type == "other":
            if not data.get("targetEnvironmentId"):
                message = 'Required when targetType is "other".'
                raise InvalidInput(
                    f"targetEnvironmentId: {message}", fields={"targetEnvironmentId": [message]}
                )
            try:
                self._environment(data["targetEnvironmentId"])
            except NotFound:
                message = "No such environment in this organisation."
                raise InvalidInput(
                    f"targetEnvironmentId: {message}", fields={"targetEnvironmentId": [message]}
                ) from None
        if data.get("pitrTimestamp"):
            # 422 stating the window when the target is outside the coverage.
            pitr_validate_timestamp(environment=backup.environment, timestamp=data["pitrTimestamp"])
        if backup.status != BackupStatus.COMPLETED:
            raise Conflict(f"Only a completed backup can be restored; this one is {backup.status}.")
        raise NotImplementedYet(RESTORE_NOT_READY)

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
        restores = (
            _restores(self)
            .filter(Q(source_environment=environment) | Q(target_environment=environment))
            .order_by("-created_at", "-id")
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
        restore = get_or_404(_restores(self), id, what="Restore")
        return Response(Seed003RestoreSerializer(restore).data)
