"""Restore drills of a database: list, run one now; the database's drill policy.

Thin over ``drills.services`` (``drill_request``, ``drill_policy_upsert``) and
``drills.selectors``; the database is looked up in the caller's organisation, so another
organisation's database is a 404.
"""

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.response import Response

from api.base.pagination import offset_page, paged_body
from api.base.schema import OFFSET_PARAM, errors, limit_param, page_of, uuid_path
from backups import selectors as backup_selectors
from backups.models import Backup
from config.errors import InvalidInput, NotFound, fields_spelled
from drills import selectors, services
from drills.api.serializers import (
    DrillPolicySerializer,
    DrillPolicyWriteSerializer,
    DrillRequestSerializer,
    DrillSerializer,
)
from drills.models import DrillPolicy
from organizations.models import Role
from organizations.tenancy import TenantViewSet

TAGS = ["restore drills"]
SPELLING = {
    "backup": "backupId",
    **{v: k for k, v in DrillPolicyWriteSerializer.DOMAIN_NAMES.items()},
}
DATABASE_ID = uuid_path("databaseId", "Database UUID")


def _spelled(name: str) -> str:
    return SPELLING.get(name, name)


class DrillViewSet(TenantViewSet):
    required_roles = {"create": Role.OPERATOR, "policy_update": Role.ADMIN}
    input_serializers = {
        "create": DrillRequestSerializer,
        "policy_update": DrillPolicyWriteSerializer,
    }

    def get_object(self):
        """The policy being changed (OPTIONS and the browsable API fill their form from it)."""
        return selectors.drill_policy_of(database=self._database(self.kwargs["databaseId"]))

    def _database(self, reference):
        return backup_selectors.database_get(
            organisation=self.tenant.organisation, reference=reference
        )

    @extend_schema(
        operation_id="database_drills_list",
        summary="List restore drills of a database",
        description="The database's restore drills, newest first: each restored a backup into "
        "a throwaway database, compared every table's row count with the backup's, measured "
        "the recovery time (`rtoSeconds`) and dropped the throwaway database.",
        parameters=[DATABASE_ID, limit_param(20), OFFSET_PARAM],
        responses={200: page_of(DrillSerializer, "DrillPage"), **errors(400, 404)},
        tags=TAGS,
    )
    def list_page(self, request, databaseId):  # noqa: N803 - the documented name
        database = self._database(databaseId)
        drills = selectors.drills_for_database(
            organisation=self.tenant.organisation, database=database
        )
        items, count, limit, offset = offset_page(request, drills, default_limit=20)
        return Response(paged_body(DrillSerializer(items, many=True).data, count, limit, offset))

    @extend_schema(
        operation_id="database_drills_create",
        summary="Run a restore drill now",
        description="Enqueues a drill of the newest completed backup of this database (or "
        "`backupId`): restored into a new throwaway database on the drill server, counted, "
        "timed and dropped; the source database is never touched. Needs the operator role. "
        "A database without a completed backup is a 422; a drill of it already scheduled or "
        "running is a 409; a `backupId` that is not a backup of this database is a 400.",
        parameters=[DATABASE_ID],
        request=DrillRequestSerializer,
        responses={202: DrillSerializer, **errors(400, 404, 409, 422)},
        examples=[
            OpenApiExample(
                "A chosen backup",
                request_only=True,
                value={"backupId": "8d1e3c2a-6a55-4a9b-9e1f-3c1d2b4a5e6f"},
            ),
        ],
        tags=TAGS,
    )
    def create(self, request, databaseId):  # noqa: N803
        database = self._database(databaseId)
        body = DrillRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        backup = self._backup(body.validated_data.get("backupId"))
        with fields_spelled(_spelled):
            drill = services.drill_request(database=database, backup=backup, user=self.tenant.user)
        return Response(DrillSerializer(drill).data, status=status.HTTP_202_ACCEPTED)

    def _backup(self, backup_id) -> Backup | None:
        if backup_id is None:
            return None
        try:
            return backup_selectors.backup_get(
                organisation=self.tenant.organisation, backup_id=backup_id
            )
        except NotFound:
            message = "No such backup in this organisation."
            raise InvalidInput(f"backupId: {message}", fields={"backupId": [message]}) from None

    @extend_schema(
        operation_id="database_drill_policy_retrieve",
        summary="Get the drill policy of a database",
        description="When the database's backups are drilled (cron or frequency in a time "
        "zone), on which server, with which throwaway name prefix, and the recovery time "
        "objective. A database without a policy answers the defaults (drills disabled).",
        parameters=[DATABASE_ID],
        responses={200: DrillPolicySerializer, **errors(404)},
        tags=TAGS,
    )
    def policy(self, request, databaseId):  # noqa: N803
        database = self._database(databaseId)
        # A database without a policy has the defaults: drills off.
        policy = selectors.drill_policy_of(database=database) or DrillPolicy(database=database)
        return Response(DrillPolicySerializer(policy, context={"now": timezone.now()}).data)

    @extend_schema(
        operation_id="database_drill_policy_update",
        summary="Create or update the drill policy of a database",
        description="Fields left out keep their value (a new policy starts disabled, in UTC, "
        "with the prefix `strongbox_drill_`). An invalid cron, frequency, time zone, prefix "
        "or a drill server the organisation's host policy refuses is a 400 naming the field. "
        "`targetPassword` is write-only. Needs the admin role.",
        parameters=[DATABASE_ID],
        request=DrillPolicyWriteSerializer,
        responses={200: DrillPolicySerializer, **errors(400, 404)},
        examples=[
            OpenApiExample(
                "Weekly, with an objective",
                request_only=True,
                value={
                    "enabled": True,
                    "cron": "0 3 * * 0",
                    "timezone": "Europe/London",
                    "rtoObjectiveSeconds": 900,
                },
            ),
        ],
        tags=TAGS,
    )
    def policy_update(self, request, databaseId):  # noqa: N803
        database = self._database(databaseId)
        body = DrillPolicyWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with fields_spelled(_spelled):
            policy = services.drill_policy_upsert(database=database, **body.domain_fields())
        return Response(DrillPolicySerializer(policy, context={"now": timezone.now()}).data)
