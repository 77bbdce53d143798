"""Tenancy in one place.

Every request acts in exactly one organisation with one role. ``tenant_for_request``
works out which; ``restrict`` scopes any queryset to it. API viewsets get both from
``TenantViewSetMixin`` (``TenantViewSet``, the base of every resource viewset, is
``api.base.views.APIViewSet`` with it in front) and HTML views from ``TenantViewMixin``, so another
organisation's object is simply not found (404), exactly like one that does not exist.

Two-factor authentication is applied here too (``organizations.two_factor.requirement``):
a page of an organisation the caller may not act in yet redirects to
``/account/two-factor/``, and an API request made with a session or a JWT is a 403
(``two_factor_required``); organisation API tokens are unaffected.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from api.base.views import APIViewSet
from config.errors import Forbidden, InvalidInput
from organizations import two_factor
from organizations.authentication import JwtPrincipal, TokenPrincipal
from organizations.models import ApiToken, Membership, Organisation, Role, role_at_least

ORGANISATION_HEADER = "HTTP_X_ORGANIZATION"
SESSION_KEY = "strongbox_organisation_id"


@dataclass(frozen=True)
class Tenant:
    organisation: Organisation
    role: str
    user: object | None = None  # a real user, or None for an API token
    token: ApiToken | None = None

    def can(self, needed: str) -> bool:
        return role_at_least(self.role, needed)

    def require(self, needed: str) -> None:
        if not self.can(needed):
            raise Forbidden(f"This action needs the {needed} role; you have {self.role}.")


def restrict(queryset: QuerySet, organisation: Organisation) -> QuerySet:
    """Scope a queryset of any tenant-owned model to one organisation."""
    lookup = queryset.model.organisation_lookup
    return queryset.filter(**{lookup: organisation})


def _find_organisation(memberships, reference: str):
    for membership in memberships:
        org = membership.organisation
        if org.slug == reference or str(org.id) == reference:
            return membership
    return None


def memberships_of(user) -> list[Membership]:
    return list(Membership.objects.filter(user=user).select_related("organisation"))


def tenant_for_user(user, reference: str | None) -> Tenant:
    """The organisation a user acts in: the one named, or their only one."""
    if user.is_superuser and reference:
        org = organisation_by_reference(reference)
        if org is not None:
            return Tenant(organisation=org, role=Role.ADMIN, user=user)
    memberships = memberships_of(user)
    if reference:
        membership = _find_organisation(memberships, reference)
        if membership is None:
            raise Forbidden(f"You are not a member of the organisation {reference!r}.")
    elif len(memberships) == 1:
        membership = memberships[0]
    elif not memberships:
        raise Forbidden("You are not a member of any organisation.")
    else:
        raise InvalidInput(
            "You belong to several organisations: name one in the X-Organization header.",
            fields={"X-Organization": ["Required for users in several organisations."]},
        )
    return Tenant(organisation=membership.organisation, role=membership.role, user=user)


def organisation_by_reference(reference: str) -> Organisation | None:
    try:
        return Organisation.objects.filter(id=uuid.UUID(reference)).first()
    except ValueError:
        return Organisation.objects.filter(slug=reference).first()


def tenant_for_request(request) -> Tenant:
    cached = getattr(request, "_strongbox_tenant", None)
    if cached is not None:
        return cached
    if isinstance(request.auth, TokenPrincipal):
        token = request.auth.token
        tenant = Tenant(organisation=token.organisation, role=token.role, token=token)
    else:
        reference = request.META.get(ORGANISATION_HEADER) or request.session.get(SESSION_KEY)
        tenant = tenant_for_user(request.user, reference)
        jwt = request.auth if isinstance(request.auth, JwtPrincipal) else None
        two_factor.api_require(request, tenant.organisation, jwt_otp=jwt and jwt.otp)
    request._strongbox_tenant = tenant
    return tenant


class TenantViewSetMixin:
    """For DRF viewsets: ``self.tenant`` and ``self.restrict(qs)``.

    ``required_roles`` maps an action to the least role it needs (default: viewer
    for reads, admin for writes unless the view says otherwise).
    """

    required_roles: dict[str, str] = {}
    default_write_role = Role.ADMIN

    @property
    def tenant(self) -> Tenant:
        return tenant_for_request(self.request)

    def restrict(self, queryset: QuerySet) -> QuerySet:
        return restrict(queryset, self.tenant.organisation)

    def required_role(self) -> str:
        action = getattr(self, "action", None) or self.request.method.lower()
        if action in self.required_roles:
            return self.required_roles[action]
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return Role.VIEWER
        return self.default_write_role

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.tenant.require(self.required_role())


class TenantViewSet(TenantViewSetMixin, APIViewSet):
    """A viewset acting in the caller's organisation with ``required_roles`` per action.

    Paging, filtering and serialization are explicit in each action, so the base
    carries no DRF pagination or filter backends (they would add undocumented
    parameters to the schema).
    """


class TenantViewMixin:
    """For HTML views: the organisation picked in the session (or the only one)."""

    required_role = Role.VIEWER

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            request.tenant = tenant_for_html(request)
            organisation = request.tenant.organisation if request.tenant else None
            if two_factor.session_requirement(request, organisation):
                return redirect_to_two_factor(request)
            if request.tenant is not None and not request.tenant.can(self.required_role):
                # Django's own exception, so an HTML page answers 403 rather than 500.
                raise PermissionDenied(f"This page needs the {self.required_role} role.")
        return super().dispatch(request, *args, **kwargs)

    def restrict(self, queryset: QuerySet) -> QuerySet:
        return restrict(queryset, self.request.tenant.organisation)


def redirect_to_two_factor(request):
    """To the two-factor page, which sends the user back here once done."""
    url = reverse("two-factor")
    return redirect(f"{url}?{urlencode({'next': request.get_full_path()})}")


def tenant_for_html(request) -> Tenant | None:
    memberships = memberships_of(request.user)
    chosen = request.session.get(SESSION_KEY)
    membership = _find_organisation(memberships, chosen) if chosen else None
    if membership is None and memberships:
        membership = memberships[0]
    if membership is None:
        if request.user.is_superuser:
            org = Organisation.objects.first()
            return Tenant(organisation=org, role=Role.ADMIN, user=request.user) if org else None
        return None
    return Tenant(organisation=membership.organisation, role=membership.role, user=request.user)
