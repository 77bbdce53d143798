"""Backup destinations: reads for every member, writes and the connection test for admins."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.response import Response

from api.base.pagination import offset_page, paged_body
from api.base.routes import get_or_404
from api.base.schema import OFFSET_PARAM, errors, limit_param, page_of, uuid_path
from destinations import services
from destinations.api import serializers as s
from destinations.models import Destination
from organizations.tenancy import TenantViewSet

DESTINATION_ID = uuid_path("id", "Backup destination UUID")
TAGS = ["backup destinations"]
EXAMPLE = {
    "id": "c3d4e5f6-0000-4000-8000-000000000001",
    "name": "Offsite S3",
    "kind": "s3",
    "parameters": {"bucket": "backups", "prefix": "strongbox", "region": "eu-west-1"},
    "secretParameters": ["access_key_id", "secret_access_key"],
    "location": "s3://backups/strongbox",
    "isDefault": True,
    "lastCheckedAt": "2026-11-20T10:00:00Z",
    "lastCheckError": "",
    "createdAt": "2026-11-01T09:00:00Z",
}


class DestinationViewSet(TenantViewSet):
    input_serializers = {
        "create": s.DestinationCreateSerializer,
        "partial_update": s.DestinationUpdateSerializer,
    }

    def get_object(self) -> Destination:
        return get_or_404(
            self.restrict(Destination.objects.all()), self.kwargs["id"], what="Destination"
        )

    @extend_schema(
        operation_id="backup_destinations_list",
        summary="List backup destinations",
        parameters=[limit_param(50), OFFSET_PARAM],
        responses={200: page_of(s.DestinationSerializer, "DestinationPage"), **errors(400)},
        tags=TAGS,
    )
    def list_page(self, request):
        queryset = self.restrict(Destination.objects.all()).order_by("name", "id")
        items, count, limit, offset = offset_page(request, queryset, default_limit=50)
        data = s.DestinationSerializer(items, many=True).data
        return Response(paged_body(data, count, limit, offset))

    @extend_schema(
        operation_id="backup_destinations_create",
        summary="Create a backup destination (admin)",
        description="Parameters are validated against the kind's declared parameters; "
        "secret ones are stored encrypted and never returned.",
        request=s.DestinationCreateDocumented,
        responses={201: s.DestinationSerializer, **errors(400)},
        examples=[
            OpenApiExample(
                "S3",
                request_only=True,
                value={
                    "name": "Offsite S3",
                    "kind": "s3",
                    "parameters": {
                        "bucket": "backups",
                        "region": "eu-west-1",
                        "access_key_id": "AKIA…",
                        "secret_access_key": "…",
                    },
                    "isDefault": True,
                },
            ),
            OpenApiExample("Created", response_only=True, value=EXAMPLE, status_codes=["201"]),
        ],
        tags=TAGS,
    )
    def create(self, request):
        body = s.DestinationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        destination = services.destination_create(
            organisation=self.tenant.organisation,
            name=data["name"],
            kind=data["kind"],
            parameters=data.get("parameters", {}),
            is_default=data["isDefault"],
        )
        return Response(s.DestinationSerializer(destination).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="backup_destination_retrieve",
        summary="Get a backup destination",
        parameters=[DESTINATION_ID],
        responses={200: s.DestinationSerializer, **errors(404)},
        examples=[OpenApiExample("Destination", response_only=True, value=EXAMPLE)],
        tags=TAGS,
    )
    def retrieve(self, request, id):  # noqa: A002 - the documented name
        return Response(s.DestinationSerializer(self.get_object()).data)

    @extend_schema(
        operation_id="backup_destination_update",
        summary="Update a backup destination (admin)",
        parameters=[DESTINATION_ID],
        request=s.DestinationUpdateSerializer,
        responses={200: s.DestinationSerializer, **errors(400, 404)},
        tags=TAGS,
    )
    def partial_update(self, request, id):  # noqa: A002
        destination = self.get_object()
        body = s.DestinationUpdateSerializer(data=request.data, context={"kind": destination.kind})
        body.is_valid(raise_exception=True)
        data = body.validated_data
        destination = services.destination_update(
            destination=destination,
            name=data.get("name"),
            parameters=data.get("parameters"),
            is_default=data.get("isDefault"),
        )
        return Response(s.DestinationSerializer(destination).data)

    @extend_schema(
        operation_id="backup_destination_destroy",
        summary="Delete a backup destination (admin)",
        description="Refused (409) while it still holds backup copies.",
        parameters=[DESTINATION_ID],
        responses={204: None, **errors(404, 409)},
        tags=TAGS,
    )
    def destroy(self, request, id):  # noqa: A002
        services.destination_delete(destination=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="backup_destination_test",
        summary="Test a backup destination's connection (admin)",
        description="Writes, reads back and deletes a small probe object. Answers 200 with "
        "`ok: false` and the failing step when the destination does not work.",
        parameters=[DESTINATION_ID],
        request=None,
        responses={200: s.DestinationTestResultSerializer, **errors(404)},
        examples=[
            OpenApiExample(
                "Failed",
                response_only=True,
                value={
                    "ok": False,
                    "message": "write failed: ClientError: An error occurred (NoSuchBucket)…",
                    "step": "write",
                    "durationMs": 120,
                    "lastCheckedAt": "2026-11-23T10:00:00Z",
                },
            )
        ],
        tags=TAGS,
    )
    def test(self, request, id):  # noqa: A002
        destination = self.get_object()
        result = services.destination_test(destination=destination)
        return Response(
            {
                "ok": result.ok,
                "message": result.message,
                "step": result.step,
                "durationMs": result.duration_ms,
                "lastCheckedAt": destination.last_checked_at,
            }
        )
