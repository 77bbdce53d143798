"""What every backup API dialect shares: the tenant-aware base view, the per-dialect
error body, timestamp formats and the OpenAPI description of the shared filters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from backups.filters import ENGINE_VALUES, FILTER_HELP, KIND_VALUES, FilterDialect
from config.errors import ApplicationError, as_application_error, render_error
from organizations.tenancy import TenantViewSetMixin

logger = logging.getLogger(__name__)

ErrorRenderer = Callable[[ApplicationError], dict]


def dialect_exception_handler(exc, context, *, render: ErrorRenderer = render_error):
    """Render any error in one dialect's documented body.

    Unexpected exceptions are logged and answered with a 500 in the same body, so a
    client of a dialect that documents its 500 gets what it was promised.
    """
    error = as_application_error(exc)
    if error is None:
        logger.exception("Unhandled error in %s", context.get("view"), exc_info=exc)
        error = ApplicationError("Internal server error.", code="internal_error")
        error.status_code = 500
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    return Response(render(error), status=error.status_code, headers=headers)


class DialectAPIView(TenantViewSetMixin, APIView):
    """A read endpoint of one dialect: bearer/session auth, the caller's tenant, and
    errors in the dialect's own body (``error_body``, seed 003's shape by default)."""

    error_body: ErrorRenderer = staticmethod(render_error)

    def get_exception_handler(self):
        render = type(self).error_body

        def handler(exc, context):
            return dialect_exception_handler(exc, context, render=render)

        return handler


# -- timestamps --------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def iso_millis_z(value: datetime | None) -> str | None:
    """``2025-09-19T21:50:27.317Z``"""
    if value is None:
        return None
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iso_seconds_z(value: datetime | None) -> str | None:
    """``2024-01-15T10:30:00Z``"""
    return None if value is None else _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_seconds_offset(value: datetime | None) -> str | None:
    """``2025-09-19T21:51:09+00:00``"""
    return None if value is None else _utc(value).replace(microsecond=0).isoformat()


# -- OpenAPI -----------------------------------------------------------------------------


def filter_parameters(dialect: FilterDialect, *, exclude: tuple[str, ...] = ()):
    """OpenAPI query parameters for the filters a dialect exposes, in its own spelling."""
    enums = {
        "status": list(dialect.status_values()),
        "kind": list(KIND_VALUES),
        "holds": list(KIND_VALUES),
        "engine": list(ENGINE_VALUES),
    }
    types = {
        "created_before": OpenApiTypes.DATETIME,
        "created_after": OpenApiTypes.DATETIME,
        "database": OpenApiTypes.UUID,
    }
    parameters = []
    for canonical, param in dialect.params.items():
        if canonical in exclude:
            continue
        parameters.append(
            OpenApiParameter(
                name=param,
                type=types.get(canonical, OpenApiTypes.STR),
                location=OpenApiParameter.QUERY,
                required=False,
                enum=enums.get(canonical),
                description=FILTER_HELP[canonical]
                + (
                    " (an unknown value is a 400 listing the allowed ones)."
                    if canonical in enums
                    else "."
                ),
            )
        )
    return parameters


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
