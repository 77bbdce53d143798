"""How a request reaches an API view: the one route helper, and the ids and flags read
from a path or a query string."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.db.models import QuerySet
from django.urls import path

from config.errors import InvalidInput, NotFound


def routes(route: str, make_view: Callable[..., Callable], name: str | None = None) -> list:
    """The documented path, and the same with a trailing slash (served, not in the schema).

    ``make_view(**initkwargs)`` returns the view callable: ``SomeAPIView.as_view``, or
    ``lambda **kw: ProjectViewSet.as_view({"get": "list_page"}, **kw)`` for a viewset.
    """
    return [
        path(route, make_view(), name=name),
        path(route + "/", make_view(schema=None)),
    ]


def parse_uuid(value) -> uuid.UUID | None:
    """The UUID ``value`` spells, or None (a malformed id is simply not found)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def get_or_404(queryset: QuerySet, pk, *, what: str = "Object"):
    """The object of ``queryset`` with id ``pk``; anything that is not a UUID cannot exist."""
    uid = parse_uuid(pk)
    obj = queryset.filter(pk=uid).first() if uid is not None else None
    if obj is None:
        raise NotFound(f"{what} not found.")
    return obj


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
