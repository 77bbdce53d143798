"""Seed 003 backup alerts: list, unread count, dismiss, mark as read."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.response import Response

from alerts import selectors, services
from alerts.api.serializers import Seed003AlertCountSerializer, Seed003AlertSerializer
from api.base.pagination import offset_page, paged_body
from api.base.routes import bool_param
from api.base.schema import OFFSET_PARAM, errors, limit_param, page_of, uuid_path
from organizations.models import Role
from organizations.tenancy import TenantViewSet

ALERT_ID = uuid_path("id", "Alert UUID")
TAGS = ["seed 003: alerts"]
ALERT_EXAMPLE = {
    "id": "4b7f…",
    "type": "backup_failed",
    "severity": "critical",
    "title": "Backup of Main failed",
    "message": "pg_dump exited with status 1: connection refused",
    "environmentId": "0b6f…",
    "backupId": "8d1e…",
    "restoreId": None,
    "occurrences": 2,
    "read": False,
    "dismissed": False,
    "resolved": False,
    "firstSeenAt": "2026-11-22T02:00:05Z",
    "lastSeenAt": "2026-11-23T02:00:04Z",
    "readAt": None,
    "dismissedAt": None,
    "resolvedAt": None,
}


class AlertViewSet(TenantViewSet):
    required_roles = {"dismiss": Role.OPERATOR, "mark_read": Role.OPERATOR}

    def get_alert(self, id):  # noqa: A002
        return selectors.alert_get(organisation=self.tenant.organisation, alert_id=id)

    @extend_schema(
        operation_id="backup_alerts_list",
        summary="List backup alerts",
        description="Returns backup alerts for the organization, optionally filtered by "
        "dismissed status.",
        parameters=[
            OpenApiParameter(
                "include_dismissed",
                OpenApiTypes.BOOL,
                OpenApiParameter.QUERY,
                description="Include dismissed alerts",
            ),
            limit_param(50),
            OFFSET_PARAM,
        ],
        responses={200: page_of(Seed003AlertSerializer, "Seed003AlertPage"), **errors(400)},
        examples=[
            OpenApiExample(
                "Alerts",
                response_only=True,
                value={"results": [ALERT_EXAMPLE], "count": 1, "limit": 50, "offset": 0},
            )
        ],
        tags=TAGS,
    )
    def list_page(self, request):
        include_dismissed = bool_param(request, "include_dismissed")
        alerts = selectors.alerts_for_organisation(
            organisation=self.tenant.organisation, include_dismissed=include_dismissed
        )
        items, count, limit, offset = offset_page(request, alerts, default_limit=50)
        data = Seed003AlertSerializer(items, many=True).data
        return Response(paged_body(data, count, limit, offset))

    @extend_schema(
        operation_id="backup_alerts_count",
        summary="Get backup alert count",
        description="Returns the count of unread and undismissed backup alerts for the "
        "organization.",
        responses={200: Seed003AlertCountSerializer, **errors()},
        examples=[OpenApiExample("Count", response_only=True, value={"count": 3})],
        tags=TAGS,
    )
    def count(self, request):
        return Response(
            {"count": selectors.alert_unread_count(organisation=self.tenant.organisation)}
        )

    @extend_schema(
        operation_id="backup_alert_dismiss",
        summary="Dismiss a backup alert",
        description="Marks a backup alert as dismissed so it no longer appears in active "
        "alerts. Needs the operator role.",
        parameters=[ALERT_ID],
        request=None,
        responses={200: Seed003AlertSerializer, **errors(404)},
        tags=TAGS,
    )
    def dismiss(self, request, id):  # noqa: A002
        alert = services.alert_dismiss(alert=self.get_alert(id), user=self.tenant.user)
        return Response(Seed003AlertSerializer(alert).data)

    @extend_schema(
        operation_id="backup_alert_mark_read",
        summary="Mark a backup alert as read",
        description="Marks a backup alert as read without dismissing it. Needs the operator role.",
        parameters=[ALERT_ID],
        request=None,
        responses={200: Seed003AlertSerializer, **errors(404)},
        tags=TAGS,
    )
    def mark_read(self, request, id):  # noqa: A002
        alert = services.alert_mark_read(alert=self.get_alert(id), user=self.tenant.user)
        return Response(Seed003AlertSerializer(alert).data)
