"""The OpenAPI description of the backup filters, in each dialect's spelling."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from backups.filters import ENGINE_VALUES, FILTER_HELP, KIND_VALUES, FilterDialect


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
