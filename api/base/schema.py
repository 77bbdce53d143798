"""What every seed-003-style endpoint shares: routes, ids, paging and the error schema.

Strongbox's own resources and seed 003 speak the same dialect: lists page with
``{"results", "count", "limit", "offset"}`` and errors are
``{"error": {"code", "message", "fields"}}`` (rendered by ``config.errors``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers, viewsets

from backups.api.base import dialect_exception_handler
from backups.api.pagination import offset_paginate, parse_limit, parse_offset
from config.errors import InvalidInput, NotFound
from config.parsers import StrictJSONParser
from organizations.tenancy import TenantViewSetMixin

# --- routes ------------------------------------------------------------------------------


def routes(route: str, make_view: Callable[..., Callable], name: str | None = None) -> list:
    """The documented path, and the same with a trailing slash (served, not in the schema).

    ``make_view(**initkwargs)`` returns the view callable, e.g.
    ``lambda **kw: ProjectViewSet.as_view({"get": "list_page"}, **kw)``.
    """
    return [
        path(route, make_view(), name=name),
        path(route + "/", make_view(schema=None)),
    ]


def parse_uuid(value, *, what: str = "Object") -> uuid.UUID:
    """An id from a path: anything that is not a UUID cannot exist, so it is a 404."""
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise NotFound(f"{what} not found.") from None


def get_or_404(queryset: QuerySet, pk, *, what: str = "Object"):
    obj = queryset.filter(pk=parse_uuid(pk, what=what)).first()
    if obj is None:
        raise NotFound(f"{what} not found.")
    return obj


def uuid_path(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.UUID, OpenApiParameter.PATH, description=description)


# --- paging --------------------------------------------------------------------------------


def bool_param(request, name: str, *, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise InvalidInput(
        f"{name} must be true or false.", fields={name: [f"'{raw}' is not a boolean."]}
    )


def offset_page(request, queryset, *, default_limit: int = 20, max_limit: int = 100):
    """(items, count, limit, offset) of one page: ``limit`` (larger is clamped) and
    ``offset`` read with the dialects' shared helpers, so errors name the parameter."""
    params = request.query_params
    limit = parse_limit(params.get("limit"), default=default_limit, maximum=max_limit)
    offset = parse_offset(params.get("offset"))
    if isinstance(queryset, QuerySet):
        page = offset_paginate(queryset, limit=limit, offset=offset)
        return page.items, page.total, limit, offset
    return list(queryset[offset : offset + limit]), len(queryset), limit, offset


def paged_body(results: list, count: int, limit: int, offset: int) -> dict:
    return {"results": results, "count": count, "limit": limit, "offset": offset}


def limit_param(default: int, maximum: int = 100) -> OpenApiParameter:
    return OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1},
        OpenApiParameter.QUERY,
        description=f"Results per page (default {default}, max {maximum}; larger is clamped)",
    )


OFFSET_PARAM = OpenApiParameter(
    "offset",
    {"type": "integer", "minimum": 0},
    OpenApiParameter.QUERY,
    description="Offset for pagination",
)

_PAGE_SERIALIZERS: dict[str, type[serializers.Serializer]] = {}


def page_of(item: type[serializers.Serializer], name: str) -> type[serializers.Serializer]:
    """The ``{"results", "count", "limit", "offset"}`` envelope around ``item``."""
    if name not in _PAGE_SERIALIZERS:
        _PAGE_SERIALIZERS[name] = type(
            name,
            (serializers.Serializer,),
            {
                "results": item(many=True),
                "count": serializers.IntegerField(help_text="Total number of matching items."),
                "limit": serializers.IntegerField(),
                "offset": serializers.IntegerField(),
                "__module__": __name__,
            },
        )
    return _PAGE_SERIALIZERS[name]


# --- errors --------------------------------------------------------------------------------


class Seed003ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable error code, e.g. invalid_input.")
    message = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="For invalid input: the offending field and what is wrong with it.",
    )


class Seed003ErrorSerializer(serializers.Serializer):
    error = Seed003ErrorDetailSerializer()


_ERROR_EXAMPLES = {
    400: ("invalid_input", "limit: 'x' is not an integer.", {"limit": ["'x' is not an integer."]}),
    401: ("unauthenticated", "Authentication credentials were not provided.", None),
    403: ("forbidden", "This action needs the admin role; you have viewer.", None),
    404: ("not_found", "Not found.", None),
    409: ("conflict", "A backup of this database is already running.", None),
    422: ("unprocessable", "targetType 'new' is disabled until orchestration exists", None),
    501: ("not_implemented", "Not implemented yet.", None),
}

_ERROR_DESCRIPTIONS = {
    400: "Invalid input; `fields` names the offending field",
    401: "No or an invalid bearer token",
    403: "The caller's role is too low",
    404: "Not found (or another organisation's)",
    409: "Conflicts with the current state",
    422: "Valid but not processable",
    501: "Not implemented yet",
}


def error_response(status: int, message: str | None = None) -> OpenApiResponse:
    code, default_message, fields = _ERROR_EXAMPLES[status]
    body: dict = {"code": code, "message": message or default_message}
    if fields:
        body["fields"] = fields
    return OpenApiResponse(
        Seed003ErrorSerializer,
        description=_ERROR_DESCRIPTIONS[status],
        examples=[OpenApiExample(f"Error {status}", value={"error": body}, status_codes=[status])],
    )


def errors(*statuses: int, **messages: str) -> dict[int, OpenApiResponse]:
    """Error responses for ``extend_schema``; 401 and 403 are always possible."""
    wanted = sorted({401, 403, *statuses})
    return {status: error_response(status, messages.get(f"e{status}")) for status in wanted}


# --- views ---------------------------------------------------------------------------------


class TenantViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    """A viewset acting in the caller's organisation with ``required_roles`` per action.

    Paging, filtering and serialization are explicit in each action, so the base
    carries no DRF pagination or filter backends (they would add undocumented
    parameters to the schema).
    """

    pagination_class = None
    filter_backends: list = []
    serializer_class = None
    # A JSON API: form encodings cannot say null or a nested object, so they are a 415.
    parser_classes = [StrictJSONParser]
    # The input serializer of each writing action; only the browsable API asks for it
    # (to draw its form), the actions validate explicitly.
    input_serializers: dict[str, type[serializers.Serializer]] = {}

    def get_exception_handler(self):
        # Unexpected errors too are answered in the documented body (and logged).
        return dialect_exception_handler

    def get_serializer_class(self):
        method = self.request.method.lower() if self.request else ""
        action = getattr(self, "action_map", {}).get(method, self.action)
        return self.input_serializers.get(action, serializers.Serializer)
