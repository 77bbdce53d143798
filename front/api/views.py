"""``GET /api/organizations/{id}/evidence?month=YYYY-MM&format=html|pdf``: the recovery
evidence report (``front/evidence.py``) for admins, as a printable page or a PDF.

It composes several apps' data, so it lives in ``front`` (like the pages that do). Errors
are seed 003's JSON body whatever format was asked for.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base.schema import errors, uuid_path
from api.base.views import dialect_exception_handler
from config.errors import InvalidInput, NotFound
from config.parsers import StrictJSONParser
from front.evidence import FORMATS, MONTH_MESSAGE, document_response, evidence_for, parse_month
from organizations.models import Role
from organizations.tenancy import TenantViewSetMixin

FORMAT_MESSAGE = f"Must be one of: {', '.join(FORMATS)}."


class _HTMLRenderer(BaseRenderer):
    media_type = "text/html"
    format = "html"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class _PDFRenderer(BaseRenderer):
    media_type = "application/pdf"
    format = "pdf"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class _ByFormat(BaseContentNegotiation):
    """The ``format`` parameter decides (default ``html``), whatever ``Accept`` says: a
    browser link and a script get the same document."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        wanted = request.query_params.get("format") or "html"
        for renderer in renderers:
            if renderer.format == wanted:
                return renderer, renderer.media_type
        return renderers[0], renderers[0].media_type


def _json_only(responses: dict) -> dict:
    return {(status, "application/json"): response for status, response in responses.items()}


class EvidenceView(TenantViewSetMixin, APIView):
    renderer_classes = [_HTMLRenderer, _PDFRenderer, JSONRenderer]
    content_negotiation_class = _ByFormat
    parser_classes = [StrictJSONParser]
    required_roles = {"get": Role.ADMIN}

    def get_exception_handler(self):
        return dialect_exception_handler

    def initial(self, request, *args, **kwargs):
        # DRF answers an unknown ``format`` with a bare 404; it is a 400 naming it.
        if "format" in request.query_params and request.query_params["format"] not in FORMATS:
            raise InvalidInput(f"format: {FORMAT_MESSAGE}", fields={"format": [FORMAT_MESSAGE]})
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response):  # an error: JSON whatever was asked for
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        operation_id="organization_evidence_retrieve",
        summary="Recovery evidence for a month (admin)",
        description="Per database, for the calendar month (UTC): backups taken, failed and "
        "verified, restore drills and their recovery times, the retention policy and "
        "encryption in force, and point-in-time recovery coverage; a printable HTML page "
        "or a PDF.",
        parameters=[
            uuid_path("id", "Organisation UUID"),
            OpenApiParameter(
                "month",
                {"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2])$"},
                OpenApiParameter.QUERY,
                required=True,
                description=MONTH_MESSAGE,
            ),
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                enum=list(FORMATS),
                description="`html` (default) or `pdf`",
            ),
        ],
        responses={
            (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="The report"),
            (200, "application/pdf"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The report as a PDF"
            ),
            **_json_only(errors(400, 404)),
        },
        tags=["organizations"],
    )
    def get(self, request, id):  # noqa: A002 - the documented path parameter
        organisation = self.tenant.organisation
        if str(organisation.id) != id and organisation.slug != id:
            raise NotFound("Organisation not found.")  # another one's is never shown
        month = parse_month(request.query_params.get("month"))
        evidence = evidence_for(organisation=organisation, month=month)
        return document_response(evidence, request.query_params.get("format") or "html")
