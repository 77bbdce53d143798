"""Sign-ins, from Django's own signals: ``user_logged_in`` (the form, the admin) and
``user_login_failed`` (every ``authenticate()``: the form, the admin and the JWT
endpoint, whose successes ``organizations.api.views.ObtainTokenView`` records itself, as
it never calls ``login()``). Thin: each calls one service."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from api.base.throttling import client_address
from audit.services import audit_sign_in, audit_sign_in_failed


def _method(request) -> str:
    path = getattr(request, "path", "") or ""
    if path.startswith("/admin/"):
        return "admin"
    if path.startswith("/api/"):
        return "jwt"
    return "form"


def _ip(request) -> str | None:
    return client_address(request) if request is not None else None


@receiver(user_logged_in, dispatch_uid="audit-sign-in")
def record_sign_in(sender, request=None, user=None, **kwargs):
    if user is not None:
        audit_sign_in(user=user, method=_method(request), ip=_ip(request))


@receiver(user_login_failed, dispatch_uid="audit-sign-in-failed")
def record_sign_in_failed(sender, credentials=None, request=None, **kwargs):
    audit_sign_in_failed(
        username=str((credentials or {}).get("username") or ""),
        method=_method(request),
        ip=_ip(request),
        locked_out=bool(getattr(request, "axes_locked_out", False)),
    )
