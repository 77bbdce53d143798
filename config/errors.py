"""One family of application errors, mapped to HTTP once.

Services raise these; they know nothing of HTTP bodies, and name fields as the domain does
(``spelled`` gives an API's names). Each API dialect renders them in its own documented
error shape (see ``render_error`` and the dialect
views), the default being seed 003's ``{"error": {"code", "message", "fields"}}``.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response


class ApplicationError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: dict | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code

    def spelled(self, name: Callable[[str], str]) -> ApplicationError:
        """This error with its field names as an API spells them.

        Services name fields as the domain does (``db_cron``); each dialect respells them
        with ``name`` (seed 003: ``dbCron``). A message that starts with a field's name and a
        colon ("db_cron: …") names it the dialect's way too.
        """
        error = copy.copy(self)
        error.fields = {name(field): messages for field, messages in self.fields.items()}
        for field in self.fields:
            if self.message.startswith(f"{field}: "):
                error.message = name(field) + self.message[len(field) :]
                error.args = (error.message,)
                break
        return error


class InvalidInput(ApplicationError):
    status_code = 400
    code = "invalid_input"


class NotFound(ApplicationError):
    status_code = 404
    code = "not_found"


class Forbidden(ApplicationError):
    status_code = 403
    code = "forbidden"


class Conflict(ApplicationError):
    status_code = 409
    code = "conflict"


class Unprocessable(ApplicationError):
    status_code = 422
    code = "unprocessable"


class PayloadTooLarge(ApplicationError):
    status_code = 413
    code = "payload_too_large"


@contextlib.contextmanager
def fields_spelled(name: Callable[[str], str]) -> Iterator[None]:
    """An ApplicationError raised in the block leaves it with its fields spelled by ``name``
    (a dialect's view wraps the service call it answers for)."""
    try:
        yield
    except ApplicationError as exc:
        raise exc.spelled(name) from None


_DRF_CODES = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    415: "unsupported_media_type",
    429: "throttled",
}


def _flatten(detail) -> str:
    if isinstance(detail, list):
        return " ".join(_flatten(d) for d in detail)
    if isinstance(detail, dict):
        return " ".join(f"{k}: {_flatten(v)}" for k, v in detail.items())
    return str(detail)


def _field_messages(detail: dict, prefix: str = "") -> dict[str, list[str]]:
    """{field: [messages]} of a DRF error detail; a nested body's fields are dotted
    (``parameters.bucket``, ``schedules.0.minute``), as the services name them."""
    fields: dict[str, list[str]] = {}
    for key, value in detail.items():
        if key == "non_field_errors" and not prefix:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            fields.update(_field_messages(value, f"{name}."))
        elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
            for index, item in enumerate(value):
                if isinstance(item, dict) and item:
                    fields.update(_field_messages(item, f"{name}.{index}."))
        else:
            fields[name] = [str(m) for m in (value if isinstance(value, list) else [value])]
    return fields


def as_application_error(exc: Exception) -> ApplicationError | None:
    """Translate DRF and Django exceptions into the application family."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, Http404):
        return NotFound("Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        return Forbidden("You do not have permission to perform this action.")
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    if isinstance(exc, drf_exceptions.ValidationError):
        detail = exc.detail
        fields = _field_messages(detail) if isinstance(detail, dict) else {}
        message = _flatten(detail) or "Invalid input."
        return InvalidInput(message, fields=fields)
    if isinstance(exc, drf_exceptions.APIException):
        error = ApplicationError(_flatten(exc.detail), code=_DRF_CODES.get(exc.status_code))
        error.status_code = exc.status_code
        return error
    return None


def render_error(error: ApplicationError) -> dict:
    body: dict = {"code": error.code, "message": error.message}
    if error.fields:
        body["fields"] = error.fields
    return {"error": body}


def exception_handler(exc, context):
    """DRF exception handler for the default (seed 003) error body."""
    error = as_application_error(exc)
    if error is None:
        return None
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    return Response(render_error(error), status=error.status_code, headers=headers)
