"""Bearer authentication: organisation API tokens and short-lived user JWTs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework import authentication, exceptions

from api.base.throttling import BadTokenThrottle
from organizations.models import TOKEN_PREFIX, ApiToken, hash_token

JWT_ALGORITHM = "HS256"
# last_used_at is a hint for people, not an audit log: write it at most once a minute.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenPrincipal:
    """What request.auth holds for a request made with an organisation API token."""

    token: ApiToken


@dataclass(frozen=True)
class JwtPrincipal:
    """What request.auth holds for a request made with a user's JWT: ``otp`` says whether
    it was issued with a one-time code (organizations/two_factor.py)."""

    otp: bool


def _signing_key() -> bytes:
    # A full-length HMAC key whatever the length of SECRET_KEY.
    return hashlib.sha256(b"strongbox-jwt:" + settings.SECRET_KEY.encode()).digest()


def issue_jwt(user, *, otp: bool = False) -> tuple[str, int]:
    ttl = settings.STRONGBOX_JWT_TTL_SECONDS
    now = timezone.now()
    payload = {
        "sub": str(user.pk),
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
        "typ": "access",
        # Signed in with a one-time code too (organisations requiring two-factor ask).
        "otp": otp,
    }
    return jwt.encode(payload, _signing_key(), algorithm=JWT_ALGORITHM), ttl


def user_and_principal_from_jwt(raw: str):
    try:
        payload = jwt.decode(raw, _signing_key(), algorithms=[JWT_ALGORITHM])
    except jwt.ExpiredSignatureError as exc:
        raise exceptions.AuthenticationFailed("The token has expired.") from exc
    except jwt.InvalidTokenError as exc:
        raise exceptions.AuthenticationFailed("Invalid token.") from exc
    user = get_user_model().objects.filter(pk=payload.get("sub"), is_active=True).first()
    if user is None:
        raise exceptions.AuthenticationFailed("Invalid token.")
    return user, JwtPrincipal(otp=payload.get("otp") is True)


def token_from_raw(raw: str) -> ApiToken:
    token = (
        ApiToken.objects.select_related("organisation")
        .filter(token_hash=hash_token(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None:
        raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


class BearerAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>`` with either an API token or a JWT.

    An address with too many failed bearer authentications is answered 429 before its
    token is even looked at (``BadTokenThrottle``), whatever the token.
    """

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header:
            return None
        parts = header.split()
        if not parts or parts[0].lower() != self.keyword.lower():
            return None
        guard = BadTokenThrottle()
        if guard.exhausted(request):
            raise exceptions.Throttled(wait=guard.wait())
        try:
            return self._credentials(parts)
        except exceptions.AuthenticationFailed:
            guard.record_failure(request)
            raise

    def _credentials(self, parts: list[str]):
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        raw = parts[1]
        if raw.startswith(TOKEN_PREFIX):
            token = token_from_raw(raw)
            return (_TokenUser(token), TokenPrincipal(token))
        return user_and_principal_from_jwt(raw)

    def authenticate_header(self, request) -> str:
        return self.keyword


class _TokenUser:
    """Stands in for a user on requests made with an organisation API token."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token: ApiToken):
        self.token = token
        self.username = f"token:{token.name}"
        # Request rates count per token (api.base.throttling.UserRateThrottle).
        self.rate_limit_key = f"token-{token.pk}"

    def __str__(self) -> str:
        return self.username
