"""Notification channels (admin): list, create, read, update, delete, send a test message.

URLs and secrets are write-only: answers show the URL masked and never the secret.
"""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.response import Response

from alerts import selectors, services
from alerts.api import serializers as s
from api.base.pagination import offset_page, paged_body
from api.base.schema import OFFSET_PARAM, errors, limit_param, page_of, uuid_path
from config.errors import fields_spelled
from organizations.models import Role
from organizations.tenancy import TenantViewSet

CHANNEL_ID = uuid_path("id", "Notification channel UUID")
TAGS = ["notification channels"]
API_NAMES = {"min_severity": "minSeverity", "send_resolved": "sendResolved"}
EXAMPLE = {
    "id": "5e7c0d1a-0000-4000-8000-000000000001",
    "name": "Ops Slack",
    "kind": "apprise",
    "url": "slack://****",
    "recipients": [],
    "events": ["backup_failed", "restore_failed"],
    "minSeverity": "warning",
    "sendResolved": True,
    "enabled": True,
    "lastDelivery": {"at": "2026-11-23T02:00:07Z", "ok": True, "error": ""},
}


def api_field(name: str) -> str:
    return API_NAMES.get(name, name)


def _service_arguments(data: dict) -> dict:
    names = {"minSeverity": "min_severity", "sendResolved": "send_resolved"}
    return {names.get(key, key): value for key, value in data.items()}


class NotificationChannelViewSet(TenantViewSet):
    required_roles = {"list_page": Role.ADMIN, "retrieve": Role.ADMIN}
    input_serializers = {
        "create": s.NotificationChannelCreateSerializer,
        "partial_update": s.NotificationChannelUpdateSerializer,
    }

    def get_channel(self, id):  # noqa: A002
        return selectors.channel_get(organisation=self.tenant.organisation, channel_id=id)

    @extend_schema(
        operation_id="notification_channels_list",
        summary="List notification channels (admin)",
        parameters=[limit_param(50), OFFSET_PARAM],
        responses={
            200: page_of(s.NotificationChannelSerializer, "NotificationChannelPage"),
            **errors(400),
        },
        tags=TAGS,
    )
    def list_page(self, request):
        channels = selectors.channels_for_organisation(organisation=self.tenant.organisation)
        items, count, limit, offset = offset_page(request, channels, default_limit=50)
        data = s.NotificationChannelSerializer(items, many=True).data
        return Response(paged_body(data, count, limit, offset))

    @extend_schema(
        operation_id="notification_channels_create",
        summary="Create a notification channel (admin)",
        description="Kind `email` takes `recipients`; `webhook` an http(s) `url` and an "
        "optional `secret` (HMAC-SHA256 signature); `apprise` an apprise `url` (Slack, "
        "Discord, Telegram, Teams, ntfy, Gotify, Matrix, PagerDuty, Opsgenie, mailto …). "
        "A host the organisation's host policy refuses (link-local and cloud metadata "
        "addresses always) is a 400 naming `url`.",
        request=s.NotificationChannelCreateSerializer,
        responses={201: s.NotificationChannelSerializer, **errors(400)},
        examples=[
            OpenApiExample(
                "Slack through apprise",
                request_only=True,
                value={
                    "name": "Ops Slack",
                    "kind": "apprise",
                    "url": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
                    "events": ["backup_failed", "restore_failed"],
                    "minSeverity": "warning",
                },
            ),
            OpenApiExample("Created", response_only=True, value=EXAMPLE, status_codes=["201"]),
        ],
        tags=TAGS,
    )
    def create(self, request):
        body = s.NotificationChannelCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with fields_spelled(api_field):
            channel = services.notification_channel_create(
                organisation=self.tenant.organisation, **_service_arguments(body.validated_data)
            )
        return Response(
            s.NotificationChannelSerializer(channel).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        operation_id="notification_channel_retrieve",
        summary="Get a notification channel (admin)",
        parameters=[CHANNEL_ID],
        responses={200: s.NotificationChannelSerializer, **errors(404)},
        examples=[OpenApiExample("Channel", response_only=True, value=EXAMPLE)],
        tags=TAGS,
    )
    def retrieve(self, request, id):  # noqa: A002
        return Response(s.NotificationChannelSerializer(self.get_channel(id)).data)

    @extend_schema(
        operation_id="notification_channel_update",
        summary="Update a notification channel (admin)",
        description="Fields left out keep their values; the kind cannot change. A new URL "
        "is checked as on create.",
        parameters=[CHANNEL_ID],
        request=s.NotificationChannelUpdateSerializer,
        responses={200: s.NotificationChannelSerializer, **errors(400, 404)},
        tags=TAGS,
    )
    def partial_update(self, request, id):  # noqa: A002
        channel = self.get_channel(id)
        body = s.NotificationChannelUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with fields_spelled(api_field):
            channel = services.notification_channel_update(
                channel=channel, **_service_arguments(body.validated_data)
            )
        return Response(s.NotificationChannelSerializer(channel).data)

    @extend_schema(
        operation_id="notification_channel_destroy",
        summary="Delete a notification channel (admin)",
        parameters=[CHANNEL_ID],
        responses={204: None, **errors(404)},
        tags=TAGS,
    )
    def destroy(self, request, id):  # noqa: A002
        services.notification_channel_delete(channel=self.get_channel(id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="notification_channel_test",
        summary="Send a test message through a notification channel (admin)",
        description="One attempt, now, logged like any delivery. Answers 200 with `ok: false` "
        "and the error when the channel does not deliver.",
        parameters=[CHANNEL_ID],
        request=None,
        responses={200: s.NotificationChannelTestSerializer, **errors(404)},
        examples=[
            OpenApiExample(
                "Failed",
                response_only=True,
                value={
                    "ok": False,
                    "error": "HTTP 503 Service Unavailable",
                    "statusCode": 503,
                    "at": "2026-11-23T10:00:00Z",
                },
            )
        ],
        tags=TAGS,
    )
    def test(self, request, id):  # noqa: A002
        delivery = services.notification_channel_test(channel=self.get_channel(id))
        return Response(
            {
                "ok": delivery.ok,
                "error": delivery.error,
                "statusCode": delivery.status_code,
                "at": delivery.created_at,
            }
        )
