"""The base classes of every API endpoint, and the handler that answers any error in an
endpoint's documented body.

Tenancy is not here, so this layer needs nothing but Django, DRF and ``config``: a
resource viewset derives from ``organizations.tenancy.TenantViewSet`` (``APIViewSet`` with
the tenancy mixin in front), a dialect's read view from ``TenantViewSetMixin`` and
``DialectAPIView``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from rest_framework import serializers, viewsets
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api.base import auth  # noqa: F401 - registers the bearer scheme with drf-spectacular
from config.errors import ApplicationError, InvalidInput, as_application_error, render_error
from config.middleware import has_nul
from config.parsers import NUL_MESSAGE, StrictJSONParser

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


class APIViewSet(viewsets.GenericViewSet):
    """A viewset of Strongbox's own resources (seed 003's shape).

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


class DialectAPIView(APIView):
    """A read endpoint of one dialect: errors in the dialect's own body (``error_body``,
    seed 003's shape by default)."""

    error_body: ErrorRenderer = staticmethod(render_error)
    # NUL characters in the path or query are refused here, in the dialect's body
    # (``config.middleware.RejectNulMiddleware`` answers for every other view).
    refuses_nul_itself = True

    def initial(self, request, *args, **kwargs):
        if has_nul(request):
            raise InvalidInput(NUL_MESSAGE)
        super().initial(request, *args, **kwargs)

    def get_exception_handler(self):
        render = type(self).error_body

        def handler(exc, context):
            return dialect_exception_handler(exc, context, render=render)

        return handler


def error_only_renderer(media_type: str, format_name: str) -> type[BaseRenderer]:
    """A renderer that lets a client ask for ``media_type`` (a stream's or a file's) when the
    answer is a StreamingHttpResponse; only error bodies ever go through it, as JSON."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode()

    name = "".join(part.title() for part in format_name.split("-")) + "ErrorRenderer"
    return type(
        name,
        (BaseRenderer,),
        {"media_type": media_type, "format": format_name, "charset": None, "render": render},
    )


class StreamingAPIView(APIView):
    """An endpoint whose success is a stream of another media type (progress events, an
    artifact): its errors are seed 003's JSON body whatever the client accepted."""

    parser_classes = [StrictJSONParser]

    def get_exception_handler(self):
        return dialect_exception_handler

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)
