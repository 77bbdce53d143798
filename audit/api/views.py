"""``GET /api/audit-events``: the organisation's audit log, newest first (admin only)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.response import Response

from api.base.pagination import offset_page, paged_body
from api.base.schema import OFFSET_PARAM, errors, limit_param, page_of
from audit import selectors
from audit.actions import ACTIONS, FAMILIES
from audit.api.serializers import AuditEventSerializer
from audit.filters import FILTER_HELP
from organizations.models import Role
from organizations.tenancy import TenantViewSet

EVENT_EXAMPLE = {
    "id": "5f0c2d6e-8d2b-4a55-9d7e-0b1c2a3d4e5f",
    "at": "2026-11-23T09:14:02.118Z",
    "actor": {"type": "user", "name": "alice"},
    "action": "schedule.update",
    "object": {"type": "schedule", "id": "42", "name": "Production"},
    "ip": "203.0.113.7",
    "outcome": "success",
    "details": {"before": {"retain_db_daily": 7}, "after": {"retain_db_daily": 14}},
}
FILTERS = [
    OpenApiParameter(
        "action",
        OpenApiTypes.STR,
        OpenApiParameter.QUERY,
        enum=[*ACTIONS, *(f"{family}.*" for family in FAMILIES)],
        description=FILTER_HELP["action"],
    ),
    OpenApiParameter(
        "actor",
        {"type": "string", "minLength": 1, "maxLength": 210},
        OpenApiParameter.QUERY,
        description=FILTER_HELP["actor"],
    ),
    OpenApiParameter(
        "since", OpenApiTypes.DATETIME, OpenApiParameter.QUERY, description=FILTER_HELP["since"]
    ),
]


class AuditEventViewSet(TenantViewSet):
    required_roles = {"list_page": Role.ADMIN}

    @extend_schema(
        operation_id="audit_events_list",
        summary="List audit events",
        description="The organisation's audit log, newest first. Needs the admin role. "
        "A bad filter value is a 400 naming the parameter.",
        parameters=[*FILTERS, limit_param(50), OFFSET_PARAM],
        responses={200: page_of(AuditEventSerializer, "AuditEventPage"), **errors(400)},
        examples=[
            OpenApiExample(
                "Audit events",
                response_only=True,
                value={"results": [EVENT_EXAMPLE], "count": 1, "limit": 50, "offset": 0},
            )
        ],
        tags=["audit"],
    )
    def list_page(self, request):
        events = selectors.audit_events_for_organisation(
            organisation=self.tenant.organisation, params=request.query_params
        )
        items, count, limit, offset = offset_page(request, events, default_limit=50)
        return Response(
            paged_body(AuditEventSerializer(items, many=True).data, count, limit, offset)
        )
