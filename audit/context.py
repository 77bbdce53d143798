"""Who is acting and from where, carried from the request to the services.

Services record audit events without taking ``request``: ``AuditContextMiddleware`` puts
the request in a context variable for its duration, and the actor is read from it when an
event is recorded, so a user signed in by session, by JWT or an API token (DRF sets the
authenticated user on the underlying request too) is named the same way. Outside a
request (a worker, the scheduler, a management command) the actor is the system, or what
``acting_as`` names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from api.base.throttling import client_address
from audit.models import ActorType


@dataclass(frozen=True)
class Actor:
    type: str
    name: str
    ref: str = ""


SYSTEM = Actor(ActorType.SYSTEM, "strongbox")
ANONYMOUS = Actor(ActorType.USER, "anonymous")

_request: ContextVar = ContextVar("strongbox_audit_request", default=None)
_actor: ContextVar[Actor | None] = ContextVar("strongbox_audit_actor", default=None)


def actor_of(user) -> Actor | None:
    """The actor a (DRF or Django) user stands for: an API token's stand-in user names
    its token; an anonymous user is nobody."""
    token = getattr(user, "token", None)
    if token is not None and getattr(token, "pk", None) is not None:
        return Actor(ActorType.TOKEN, token.name, str(token.pk))
    if user is not None and getattr(user, "is_authenticated", False) and user.pk is not None:
        return Actor(ActorType.USER, user.get_username(), str(user.pk))
    return None


def current_request():
    return _request.get()


def current_actor() -> Actor:
    explicit = _actor.get()
    if explicit is not None:
        return explicit
    request = _request.get()
    if request is None:
        return SYSTEM
    return actor_of(getattr(request, "user", None)) or ANONYMOUS


def current_ip() -> str | None:
    request = _request.get()
    return client_address(request) if request is not None else None


@contextlib.contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    """Record what happens inside as done by ``actor`` (a command names its operator)."""
    reset = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(reset)


def system_actor(name: str) -> Actor:
    return Actor(ActorType.SYSTEM, name)


class AuditContextMiddleware:
    """Makes the request the audit context of everything it calls. After Django's
    ``AuthenticationMiddleware``; the user is read only when an event is recorded."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        reset = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(reset)
