"""OpenAPI helpers every endpoint shares: path and paging parameters, the page envelope,
the error bodies and named enum components.

Strongbox's own resources and seed 003 speak the same dialect: lists page with
``{"results", "count", "limit", "offset"}`` and errors are
``{"error": {"code", "message", "fields"}}`` (rendered by ``config.errors``).
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    inline_serializer,
)
from rest_framework import serializers

from api.base.pagination import MAX_OFFSET
from api.base.strict import StrictInputSerializer

# --- parameters ----------------------------------------------------------------------------


def uuid_path(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.UUID, OpenApiParameter.PATH, description=description)


def limit_param(default: int, maximum: int = 100) -> OpenApiParameter:
    return OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1},
        OpenApiParameter.QUERY,
        description=f"Results per page (default {default}, max {maximum}; larger is clamped)",
    )


OFFSET_PARAM = OpenApiParameter(
    "offset",
    {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
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
    429: ("throttled", "Request was throttled. Expected available in 42 seconds.", None),
    501: ("not_implemented", "Not implemented yet.", None),
}

_ERROR_DESCRIPTIONS = {
    400: "Invalid input; `fields` names the offending field",
    401: "No or an invalid bearer token",
    403: "The caller's role is too low",
    404: "Not found (or another organisation's)",
    409: "Conflicts with the current state",
    422: "Valid but not processable",
    429: "Too many requests (or failed sign-ins); `Retry-After` gives the seconds to wait",
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


# --- enums --------------------------------------------------------------------------------


class EnumComponentField(serializers.ChoiceField):
    """A choice field whose values are one named enum component of the schema."""

    component_name = "Enum"


def enum_field(component_name: str, values, **kwargs) -> serializers.ChoiceField:
    """A choice field documented as the enum component ``component_name``.

    Dialects reuse field names (``status``) with different vocabularies; naming the
    enums keeps drf-spectacular from inventing hashed names for them.
    """
    field_class = type(
        f"{component_name}Field", (EnumComponentField,), {"component_name": component_name}
    )
    return field_class(choices=list(values), **kwargs)


class EnumComponentFieldExtension(OpenApiSerializerFieldExtension):
    target_class = EnumComponentField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        name = self.target.component_name
        component = ResolvedComponent(
            name=name,
            type=ResolvedComponent.SCHEMA,
            object=name,
            schema={"type": "string", "enum": list(self.target.choices)},
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref


# Seed 003's error body, the default for dialects whose document shows none.
DefaultErrorSerializer = inline_serializer(
    name="StrongboxErrorBody",
    fields={
        "error": inline_serializer(
            name="StrongboxErrorDetail",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(
                    child=serializers.ListField(child=serializers.CharField()), required=False
                ),
            },
        )
    },
)


# --- strict bodies --------------------------------------------------------------------------


class StrictInputSerializerExtension(OpenApiSerializerExtension):
    """A strict body's component says what the serializer enforces: no other fields."""

    target_class = StrictInputSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        return schema


# --- hooks ---------------------------------------------------------------------------------


def document_rate_limits(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation that can answer 401 can answer
    429 too (request rates, failed bearer authentications, a sign-in lockout), in the same
    dialect's error body as its 401, with ``Retry-After``."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses") if isinstance(operation, dict) else None
            if not responses or "401" not in responses or "429" in responses:
                continue
            content = {
                media_type: {"schema": body["schema"]}
                for media_type, body in responses["401"].get("content", {}).items()
                if "schema" in body
            }
            responses["429"] = {
                "description": _ERROR_DESCRIPTIONS[429],
                "headers": {
                    "Retry-After": {
                        "schema": {"type": "integer", "minimum": 0},
                        "description": "Seconds to wait before trying again.",
                    }
                },
                **({"content": content} if content else {}),
            }
    return result


PAGING_PARAMETERS = ("limit", "offset", "page", "page_size", "per_page")


def document_empty_paging_values(result, generator, request, public):
    """drf-spectacular postprocessing hook: a paging parameter sent empty (``?limit=``) means
    its default in every dialect (``parse_limit``/``parse_offset``/``parse_page`` and the
    dialects' query serializers alike), so the schema says ``allowEmptyValue``: a client or
    a fuzzer reading it knows an empty value is accepted, not a type error."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if (
                    parameter.get("in") == "query"
                    and parameter.get("name") in PAGING_PARAMETERS
                    and schema.get("type") == "integer"
                ):
                    parameter["allowEmptyValue"] = True
    return result
