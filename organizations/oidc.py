"""mozilla-django-oidc wired to Strongbox's settings and to ``organizations.sso``.

The library runs the authorization code flow: ``/oidc/authenticate/`` stores ``state``, a
``nonce`` and a PKCE verifier in the session and sends the browser to the provider;
``/oidc/callback/`` checks ``state``, swaps the code for tokens (client secret and PKCE
verifier), verifies the ID token's signature against the provider's JWKS and its ``nonce``,
and asks the userinfo endpoint. Strongbox adds: its settings instead of the library's
(``_library_setting``, read lazily so that discovery only happens on a sign-in), the ID
token's issuer and audience (the library checks neither), the user found and its
memberships synchronised by ``sso.sso_user_sign_in``, and pages that say why a sign-in was
refused instead of a redirect to ``/``.

Signing in this way does not pass through the password form, so a second factor asked by
the form is not asked: the provider does its own.
"""

from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation
from django.shortcuts import render
from django.urls import path
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
    OIDCLogoutView,
)

from organizations import sso

logger = logging.getLogger(__name__)


class LocalPasswordBackend(ModelBackend):
    """Django's username-and-password backend, refusing everyone but superusers when
    ``STRONGBOX_LOCAL_LOGIN`` is off: the sign-in form, the admin's and
    ``POST /api/auth/token`` all ask it. Superusers keep it so that an operator can still
    get in when the provider is down (at ``/admin/login/``)."""

    def user_can_authenticate(self, user) -> bool:
        if not sso.local_login_enabled() and not user.is_superuser:
            return False
        return super().user_can_authenticate(user)


_LIBRARY_SETTINGS = {
    "OIDC_RP_CLIENT_ID": lambda: settings.STRONGBOX_OIDC_CLIENT_ID,
    "OIDC_RP_CLIENT_SECRET": lambda: settings.STRONGBOX_OIDC_CLIENT_SECRET,
    "OIDC_RP_SCOPES": lambda: settings.STRONGBOX_OIDC_SCOPES,
    "OIDC_RP_SIGN_ALGO": lambda: settings.STRONGBOX_OIDC_SIGN_ALGO,
    "OIDC_OP_AUTHORIZATION_ENDPOINT": lambda: sso.provider_endpoints().authorization_endpoint,
    "OIDC_OP_TOKEN_ENDPOINT": lambda: sso.provider_endpoints().token_endpoint,
    "OIDC_OP_USER_ENDPOINT": lambda: sso.provider_endpoints().userinfo_endpoint,
    "OIDC_OP_JWKS_ENDPOINT": lambda: sso.provider_endpoints().jwks_uri,
    "OIDC_USE_PKCE": lambda: True,
    "OIDC_USE_NONCE": lambda: True,
    "OIDC_TIMEOUT": lambda: settings.STRONGBOX_OIDC_TIMEOUT_SECONDS,
    "OIDC_CREATE_USER": lambda: True,
}


def _library_setting(attr, *default):
    if attr in _LIBRARY_SETTINGS:
        return _LIBRARY_SETTINGS[attr]()
    return import_from_settings(attr, *default)


class SsoBackend(OIDCAuthenticationBackend):
    """The library's backend, answering only the callback's ``authenticate`` call (with a
    ``nonce``) and only when single sign-on is configured."""

    get_settings = staticmethod(_library_setting)

    def __init__(self, *args, **kwargs):
        # Not the library's: it reads every endpoint up front, which would discover the
        # provider on every password sign-in. Each is read when the flow needs it.
        self.UserModel = get_user_model()

    OIDC_OP_TOKEN_ENDPOINT = property(lambda self: self.get_settings("OIDC_OP_TOKEN_ENDPOINT"))
    OIDC_OP_USER_ENDPOINT = property(lambda self: self.get_settings("OIDC_OP_USER_ENDPOINT"))
    OIDC_OP_JWKS_ENDPOINT = property(lambda self: self.get_settings("OIDC_OP_JWKS_ENDPOINT"))
    OIDC_RP_CLIENT_ID = property(lambda self: self.get_settings("OIDC_RP_CLIENT_ID"))
    OIDC_RP_CLIENT_SECRET = property(lambda self: self.get_settings("OIDC_RP_CLIENT_SECRET"))
    OIDC_RP_SIGN_ALGO = property(lambda self: self.get_settings("OIDC_RP_SIGN_ALGO"))
    OIDC_RP_IDP_SIGN_KEY = None

    def authenticate(self, request, **kwargs):
        if not sso.sso_enabled() or "nonce" not in kwargs:
            return None
        try:
            return super().authenticate(request, **kwargs)
        except (sso.SsoAccessDenied, sso.SsoUnavailable) as exc:
            request.sso_refusal = exc
        except requests.RequestException as exc:
            logger.warning("Single sign-on: the provider's token or userinfo call failed: %s", exc)
            request.sso_refusal = sso.SsoUnavailable("The sign-in service did not answer.")
        except SuspiciousOperation as exc:
            # A token that does not verify: log why, show the person a plain refusal.
            logger.warning("Single sign-on refused: %s", exc)
            request.sso_refusal = sso.SsoAccessDenied("The sign-in service's answer was refused.")
        return None

    def get_user(self, user_id):
        # The library's finds inactive users too: a user disabled after signing in would
        # keep their session.
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

    def verify_token(self, token, **kwargs):
        payload = super().verify_token(token, **kwargs)
        issuer = sso.provider_endpoints().issuer
        if issuer and payload.get("iss", "").rstrip("/") != issuer:
            raise SuspiciousOperation(f"The ID token's issuer {payload.get('iss')!r} is not ours.")
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("The ID token is not meant for this client.")
        return payload

    def get_or_create_user(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("The userinfo answer is about another subject.")
        # Groups may come in the ID token, the userinfo answer or both (provider settings).
        claims = {**payload, **userinfo}
        account = sso.SsoAccount.from_claims(claims, issuer=payload.get("iss", "").rstrip("/"))
        return sso.sso_user_sign_in(account=account)


def _refused(request, error, status: int):
    return render(
        request,
        "sso_refused.html",
        {"error": error, "denied": isinstance(error, sso.SsoAccessDenied)},
        status=status,
    )


class SsoStartView(OIDCAuthenticationRequestView):
    """``/oidc/authenticate/``: off to the provider (a page saying so when it is down)."""

    get_settings = staticmethod(_library_setting)

    def __init__(self, *args, **kwargs):
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.STRONGBOX_OIDC_CLIENT_ID

    def get(self, request):
        try:
            self.OIDC_OP_AUTH_ENDPOINT = self.get_settings("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except sso.SsoUnavailable as exc:
            return _refused(request, exc, 503)
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """``/oidc/callback/``: the library's, with a page for a refusal instead of ``/``."""

    get_settings = staticmethod(_library_setting)

    def login_failure(self):
        refusal = getattr(self.request, "sso_refusal", None)
        if isinstance(refusal, sso.SsoAccessDenied | sso.SsoUnavailable):
            return _refused(self.request, refusal, refusal.status_code)
        if self.request.GET.get("error"):
            message = self.request.GET.get("error_description") or self.request.GET["error"]
            return _refused(self.request, sso.SsoAccessDenied(message), 403)
        if getattr(self, "user", None) is not None and not self.user.is_active:
            return _refused(
                self.request, sso.SsoAccessDenied("This account has been disabled here."), 403
            )
        return _refused(self.request, sso.SsoAccessDenied("The sign-in did not complete."), 400)


class SsoLogoutView(OIDCLogoutView):
    get_settings = staticmethod(_library_setting)


urlpatterns = [
    path("callback/", SsoCallbackView.as_view(), name="oidc_authentication_callback"),
    path("authenticate/", SsoStartView.as_view(), name="oidc_authentication_init"),
    path("logout/", SsoLogoutView.as_view(), name="oidc_logout"),
]
