"""Organisation pages: switching organisation and API tokens.

The base of every page (``TenantPage``, ``TenantAction``) is ``organizations.pages``;
the dashboard and the environment page, composed of several apps, are ``front``.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.generic import TemplateView

from organizations.models import ApiToken, Role
from organizations.pages import TenantAction, TenantPage
from organizations.services import api_token_create, api_token_revoke
from organizations.tenancy import SESSION_KEY, memberships_of


@login_required
@require_POST
def switch_organisation(request):
    wanted = request.POST.get("organisation", "")
    membership = next(
        (m for m in memberships_of(request.user) if str(m.organisation_id) == wanted), None
    )
    if membership is not None:
        request.session[SESSION_KEY] = str(membership.organisation_id)
    target = request.POST.get("next") or "dashboard"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "dashboard"
    return redirect(target)


# --- API tokens ------------------------------------------------------------------------


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=200, help_text="What uses it, e.g. “CI deploy pipeline”.", strip=True
    )
    role = forms.ChoiceField(
        choices=Role.choices,
        initial=Role.VIEWER,
        help_text="Viewer reads; operator also triggers backups and restores; admin manages.",
    )


class ApiTokensView(TenantPage, TemplateView):
    """List the organisation's tokens; creating one shows its value exactly once."""

    template_name = "tokens.html"
    required_role = Role.ADMIN

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", ApiTokenForm())
        context["tokens"] = (
            ApiToken.objects.filter(organisation=self.organisation)
            .select_related("created_by")
            .order_by("revoked_at", "-created_at")
        )
        context["active_count"] = (
            ApiToken.objects.filter(organisation=self.organisation)
            .filter(Q(revoked_at__isnull=True))
            .count()
        )
        return context

    def post(self, request, *args, **kwargs):
        form = ApiTokenForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        token, raw = api_token_create(
            organisation=self.organisation,
            name=form.cleaned_data["name"],
            role=form.cleaned_data["role"],
            created_by=request.user,
        )
        # Rendered, not redirected: the raw value must never be stored, not even in the
        # session, so this response is the only place it appears.
        response = self.render_to_response(
            self.get_context_data(new_token=token, new_token_value=raw)
        )
        response["Cache-Control"] = "no-store"
        return response


class ApiTokenRevokeView(TenantAction):
    required_role = Role.ADMIN

    def perform(self, request, **kwargs) -> str:
        token = self.restrict(ApiToken.objects.all()).filter(pk=kwargs["pk"]).first()
        if token is None:
            raise Http404("Token not found.")
        api_token_revoke(token=token)
        return f"Token “{token.name}” revoked; requests using it are now refused."

    def success_url(self, **kwargs) -> str:
        return reverse("api-tokens")
