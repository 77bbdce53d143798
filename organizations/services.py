"""Writes to the tenancy model."""

from __future__ import annotations

from django.utils import timezone

from organizations.models import ApiToken, Organisation, hash_token


def api_token_create(
    *, organisation: Organisation, name: str, role: str, created_by=None
) -> tuple[ApiToken, str]:
    """Create a token and return it with its raw value, which is never stored."""
    raw = ApiToken.generate()
    token = ApiToken.objects.create(
        organisation=organisation,
        name=name,
        role=role,
        token_hash=hash_token(raw),
        token_prefix=raw[:12],
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    return token, raw


def api_token_revoke(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
