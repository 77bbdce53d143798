"""Organisation pages: sign-in helpers, the dashboard, environments and API tokens.

The base of every page (``TenantPage``, ``TenantAction``) is ``organizations.pages``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.generic import TemplateView

from alerts import selectors as alert_selectors
from backups import selectors as backup_selectors
from backups.views import environment_backups_context
from organizations.models import ApiToken, Environment, Organisation, Role
from organizations.pages import TenantAction, TenantPage
from organizations.selectors import projects_with_environments
from organizations.services import api_token_create, api_token_revoke
from organizations.tenancy import SESSION_KEY, memberships_of
from restores import selectors as restore_selectors
from schedules import selectors as schedule_selectors

# --- reads for the dashboard -----------------------------------------------------------


@dataclass
class EnvironmentSummary:
    environment: Environment
    last_backup: object | None
    next_run: datetime | None
    open_alerts: int
    storage_bytes: int


def environment_summaries(*, organisation: Organisation) -> dict:
    """Per environment: last backup, next scheduled run, open alerts and storage used.

    A few grouped queries for the whole organisation, whatever its size.
    """
    environments = Environment.objects.filter(project__organisation=organisation)
    last = backup_selectors.last_backup_by_environment(organisation=organisation)
    alerts = alert_selectors.open_alert_count_by_environment(organisation=organisation)
    storage = backup_selectors.stored_bytes_by_environment(organisation=organisation)
    next_run = schedule_selectors.next_run_by_environment(
        organisation=organisation, now=timezone.now()
    )
    return {
        env_id: EnvironmentSummary(
            environment=None,
            last_backup=last.get(env_id),
            next_run=next_run.get(env_id),
            open_alerts=alerts.get(env_id, 0),
            storage_bytes=storage.get(env_id) or 0,
        )
        for env_id in environments.values_list("id", flat=True)
    }


# --- pages -------------------------------------------------------------------------------


class DashboardView(TenantPage, TemplateView):
    template_name = "dashboard.html"
    needs_tenant = False

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.request.tenant
        if tenant is None:
            context["projects"] = []
            return context
        projects = list(projects_with_environments(organisation=tenant.organisation))
        summaries = environment_summaries(organisation=tenant.organisation)
        for project in projects:
            project.rows = []
            for env in project.environments.all():
                summary = summaries.get(env.id)
                if summary is not None:
                    summary.environment = env
                    project.rows.append(summary)
        context["projects"] = projects
        return context


class EnvironmentDetailView(TenantPage, TemplateView):
    """The environment page: its backups (filtered, paged), a size chart, a trigger."""

    template_name = "environment_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        environment = self.environment(self.kwargs["pk"])
        if str(environment.project_id) != str(self.kwargs["project_id"]):
            raise Http404("Environment not found.")
        context["environment"] = environment
        context.update(environment_backups_context(self.request, environment))
        schedule = schedule_selectors.schedule_find(environment=environment)
        context["schedule"] = schedule
        context["next_run"] = schedule.next_run(timezone.now()) if schedule else None
        context["timeline"] = restore_selectors.pitr_timeline(environment)
        return context


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
