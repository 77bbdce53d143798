"""Single sign-on: who an OpenID provider's account is here, and what it may do.

The protocol (the authorization code flow, ``state``, ``nonce``, PKCE, the ID token's RS256
signature against the provider's JWKS) is mozilla-django-oidc's, wired in
``organizations/oidc.py``. This module holds what Strongbox decides:

- The role map (``STRONGBOX_OIDC_ROLE_MAP``): ``group=organisation:role`` entries separated
  by commas or new lines, ``*`` for every organisation; ``parse_role_map`` reads it and
  ``grants_for`` turns a user's groups into one role per organisation slug (the highest when
  several groups name the same organisation; a named organisation beats ``*``'s role only
  when it is higher).
- ``sso_user_sign_in``, the one write of a sign-in: the user is found by the provider's
  issuer and ``sub`` (``SsoIdentity``), never by e-mail or username; created on the first
  sign-in that grants something; its memberships made by single sign-on (``source=sso``)
  are brought in line with the grants every time (added, changed, removed), while those
  added by hand are left alone. A user left with no membership at all is refused
  (``SsoAccessDenied``): a first sign-in then creates no user row, a later one keeps the row
  (with only its hand-made memberships, which here are none) so that its history stays.
- Endpoint discovery (``provider_endpoints``): the provider's
  ``/.well-known/openid-configuration``, read on the first sign-in of each process and kept;
  an endpoint set explicitly wins over the discovered one.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.checks import Error, Warning
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import ApplicationError
from organizations.models import (
    ROLE_RANK,
    Membership,
    MembershipSource,
    Organisation,
    Role,
    SsoIdentity,
)

logger = logging.getLogger(__name__)

EVERY_ORGANISATION = "*"


class SsoAccessDenied(ApplicationError):
    """The provider vouched for the user, but nothing here lets them in."""

    status_code = 403
    code = "sso_access_denied"


class SsoUnavailable(ApplicationError):
    """The OpenID provider cannot be asked (discovery failed, or it is not configured)."""

    status_code = 503
    code = "sso_unavailable"


def sso_enabled() -> bool:
    return bool(settings.STRONGBOX_OIDC_CLIENT_ID)


def local_login_enabled() -> bool:
    return settings.STRONGBOX_LOCAL_LOGIN


# --- The role map -----------------------------------------------------------------------


@dataclass(frozen=True)
class RoleRule:
    """Members of ``group`` get ``role`` in the organisation ``organisation`` (a slug, or
    ``*`` for every organisation)."""

    group: str
    organisation: str
    role: str


_SEPARATORS = re.compile(r"[,\n]")


def parse_role_map(text: str) -> list[RoleRule]:
    """``platform-admins=quant-gov:admin,auditors=*:viewer`` as rules.

    A group name may hold anything but a comma or a new line (Keycloak's ``/team/ops``
    paths included); the last ``=`` separates it from ``organisation:role``. Raises
    ValueError naming the entry that does not read."""
    rules = []
    for raw in _SEPARATORS.split(text):
        entry = raw.strip()
        if not entry:
            continue
        group, equals, target = entry.rpartition("=")
        organisation, colon, role = target.strip().partition(":")
        group, organisation, role = group.strip(), organisation.strip(), role.strip()
        if not equals or not group or not colon or not organisation:
            raise ValueError(
                f"STRONGBOX_OIDC_ROLE_MAP entry {entry!r} must read group=organisation:role"
            )
        if role not in Role.values:
            raise ValueError(
                f"STRONGBOX_OIDC_ROLE_MAP entry {entry!r}: the role must be one of "
                f"{', '.join(Role.values)}, not {role!r}"
            )
        rules.append(RoleRule(group=group, organisation=organisation, role=role))
    return rules


def _higher(role: str | None, other: str) -> str:
    return other if role is None or ROLE_RANK[other] > ROLE_RANK[role] else role


def grants_for(
    groups: Iterable[str], rules: Iterable[RoleRule], slugs: Iterable[str]
) -> dict[str, str]:
    """The role per organisation slug that ``groups`` are given, for the organisations
    ``slugs`` that exist; rules naming no existing organisation give nothing."""
    member_of = set(groups)
    existing = set(slugs)
    grants: dict[str, str] = {}
    for rule in rules:
        if rule.group not in member_of:
            continue
        targets = existing if rule.organisation == EVERY_ORGANISATION else {rule.organisation}
        for slug in targets & existing:
            grants[slug] = _higher(grants.get(slug), rule.role)
    return grants


def groups_from_claims(claims: dict, claim: str) -> list[str]:
    """The user's groups: the claim named ``claim``, a dotted path for a nested one
    (``realm_access.roles``); a list of strings, or one string."""
    value: object = claims
    for part in claim.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


# --- Discovery -------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderEndpoints:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str


_EXPLICIT = {
    "authorization_endpoint": "STRONGBOX_OIDC_AUTHORIZATION_ENDPOINT",
    "token_endpoint": "STRONGBOX_OIDC_TOKEN_ENDPOINT",
    "userinfo_endpoint": "STRONGBOX_OIDC_USERINFO_ENDPOINT",
    "jwks_uri": "STRONGBOX_OIDC_JWKS_URI",
}
_discovered: dict[str, dict] = {}
_discovery_lock = threading.Lock()


def _discover(issuer: str) -> dict:
    with _discovery_lock:
        if issuer not in _discovered:
            url = f"{issuer}/.well-known/openid-configuration"
            try:
                response = requests.get(url, timeout=settings.STRONGBOX_OIDC_TIMEOUT_SECONDS)
                response.raise_for_status()
                document = response.json()
            except (requests.RequestException, ValueError) as exc:
                logger.warning("OpenID discovery at %s failed: %s", url, exc)
                raise SsoUnavailable(f"The sign-in service at {issuer} did not answer.") from exc
            if document.get("issuer", "").rstrip("/") != issuer:
                raise SsoUnavailable(
                    f"{url} names the issuer {document.get('issuer')!r}, not {issuer!r}."
                )
            _discovered[issuer] = document
        return _discovered[issuer]


def provider_endpoints() -> ProviderEndpoints:
    """The provider's endpoints: those set explicitly, the rest discovered from the issuer
    (asked once per process and kept; a failed discovery is asked again next time)."""
    if not sso_enabled():
        raise SsoUnavailable("Single sign-on is not configured.")
    issuer = settings.STRONGBOX_OIDC_ISSUER.rstrip("/")
    values = {name: getattr(settings, setting) for name, setting in _EXPLICIT.items()}
    if not all(values.values()):
        if not issuer:
            raise SsoUnavailable("STRONGBOX_OIDC_ISSUER or every endpoint must be set.")
        document = _discover(issuer)
        values = {name: value or document.get(name, "") for name, value in values.items()}
    return ProviderEndpoints(issuer=issuer, **values)


# --- Signing in ------------------------------------------------------------------------


@dataclass(frozen=True)
class SsoAccount:
    """What the provider says about the person signing in."""

    issuer: str
    subject: str
    username: str
    email: str
    first_name: str
    last_name: str
    groups: tuple[str, ...]

    @classmethod
    def from_claims(cls, claims: dict, *, issuer: str) -> SsoAccount:
        email = claims.get("email") if isinstance(claims.get("email"), str) else ""
        name = next(
            (claims[key] for key in ("preferred_username", "nickname") if claims.get(key)),
            email.partition("@")[0] or claims["sub"],
        )
        return cls(
            issuer=issuer,
            subject=str(claims["sub"]),
            username=str(name),
            email=email,
            first_name=str(claims.get("given_name") or "")[:150],
            last_name=str(claims.get("family_name") or "")[:150],
            groups=tuple(groups_from_claims(claims, settings.STRONGBOX_OIDC_GROUPS_CLAIM)),
        )


def _free_username(account: SsoAccount) -> str:
    """The provider's username, unless a local account has it: then the same with a
    suffix from the subject, so the two never mix."""
    users = get_user_model().objects
    wanted = account.username[:150]
    if not users.filter(username=wanted).exists():
        return wanted
    suffix = hashlib.sha256(f"{account.issuer} {account.subject}".encode()).hexdigest()[:8]
    return f"{account.username[:140]}-{suffix}"


def _organisation_grants(account: SsoAccount) -> dict[int, tuple[Organisation, str]]:
    rules = parse_role_map(settings.STRONGBOX_OIDC_ROLE_MAP)
    wanted = {rule.organisation for rule in rules if rule.group in set(account.groups)}
    if not wanted:
        return {}
    organisations = Organisation.objects.all()
    if EVERY_ORGANISATION not in wanted:
        organisations = organisations.filter(slug__in=wanted)
    by_slug = {organisation.slug: organisation for organisation in organisations}
    missing = wanted - set(by_slug) - {EVERY_ORGANISATION}
    if missing:
        logger.warning("The role map names organisations that do not exist: %s", sorted(missing))
    grants = grants_for(account.groups, rules, by_slug)
    return {by_slug[slug].pk: (by_slug[slug], role) for slug, role in grants.items()}


def sso_memberships_sync(*, user, grants: dict[int, tuple[Organisation, str]]) -> None:
    """The user's single sign-on memberships made to match ``grants`` (organisation id →
    (organisation, role)); memberships added by hand stay as they are, and win over a
    grant for the same organisation. A few queries however many organisations (``*``)."""
    held = {m.organisation_id: m for m in Membership.objects.filter(user=user)}
    ours = {pk: m for pk, m in held.items() if m.source == MembershipSource.SSO}
    Membership.objects.filter(pk__in=[m.pk for pk, m in ours.items() if pk not in grants]).delete()
    changed = []
    for organisation_id, membership in ours.items():
        if organisation_id in grants and membership.role != grants[organisation_id][1]:
            membership.role = grants[organisation_id][1]
            changed.append(membership)
    Membership.objects.bulk_update(changed, ["role"], batch_size=500)
    Membership.objects.bulk_create(
        [
            Membership(user=user, organisation=organisation, role=role, source=MembershipSource.SSO)
            for organisation_id, (organisation, role) in grants.items()
            if organisation_id not in held
        ],
        batch_size=500,
    )


def _denied(account: SsoAccount) -> SsoAccessDenied:
    return SsoAccessDenied(
        f"You signed in as {account.username}, but none of your groups "
        f"({', '.join(account.groups) or 'none'}) is given a role in any organisation here."
    )


def _user_for(account: SsoAccount, grants: dict):
    User = get_user_model()  # noqa: N806 - a model class
    with transaction.atomic():
        identity = (
            SsoIdentity.objects.select_for_update()
            .select_related("user")
            .filter(issuer=account.issuer, subject=account.subject)
            .first()
        )
        if identity is None:
            if not grants:
                raise _denied(account)
            user = User.objects.create_user(_free_username(account), email=account.email)
            identity = SsoIdentity.objects.create(
                user=user, issuer=account.issuer, subject=account.subject
            )
        user = identity.user
        user.email = account.email or user.email
        user.first_name = account.first_name or user.first_name
        user.last_name = account.last_name or user.last_name
        user.save(update_fields=["email", "first_name", "last_name"])
        identity.last_sign_in_at = timezone.now()
        identity.save(update_fields=["last_sign_in_at"])
        sso_memberships_sync(user=user, grants=grants)
    return user


def sso_user_sign_in(*, account: SsoAccount):
    """The user the provider's ``account`` signs in as, its memberships in line with its
    groups; raises ``SsoAccessDenied`` when it is left with no organisation."""
    grants = _organisation_grants(account)
    try:
        user = _user_for(account, grants)
    except IntegrityError:
        # A simultaneous first sign-in of the same account (or name) won: now it is found.
        user = _user_for(account, grants)
    # Outside the transaction: the memberships removed above stay removed when refused.
    if not user.is_superuser and not Membership.objects.filter(user=user).exists():
        raise _denied(account)
    return user


# --- manage.py check ---------------------------------------------------------------------


def check_sso_settings(app_configs=None, **kwargs) -> list:
    """strongbox.E140–E141 for single sign-on settings that cannot work, W140 for a
    configuration in which only superusers can sign in."""
    problems = []
    try:
        parse_role_map(settings.STRONGBOX_OIDC_ROLE_MAP)
    except ValueError as exc:
        problems.append(Error(str(exc), id="strongbox.E140"))
    if sso_enabled() and not settings.STRONGBOX_OIDC_ISSUER:
        missing = [name for name in _EXPLICIT.values() if not getattr(settings, name)]
        if missing:
            problems.append(
                Error(
                    "Single sign-on needs STRONGBOX_OIDC_ISSUER, or else every endpoint: "
                    f"{', '.join(missing)} is not set.",
                    id="strongbox.E141",
                )
            )
    if not sso_enabled() and not local_login_enabled():
        problems.append(
            Warning(
                "STRONGBOX_LOCAL_LOGIN is off and single sign-on is not configured: only "
                "superusers can sign in (at /admin/login/).",
                id="strongbox.W140",
            )
        )
    return problems
