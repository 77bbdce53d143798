"""Organisation pages: sign-in helpers, the dashboard, environments and API tokens.

The base of every page (``TenantPage``, ``TenantAction``) is ``organizations.pages``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, Sum
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.generic import TemplateView

from organizations.models import ApiToken, Environment, Organisation, Role
from organizations.pages import TenantAction, TenantPage
from organizations.selectors import projects_with_environments
from organizations.services import api_token_create, api_token_revoke
from organizations.tenancy import SESSION_KEY, memberships_of

# --- reads for the dashboard (no selector offers them yet) ------------------------------


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
    from alerts.models import Alert
    from backups.models import Backup, BackupCopy, CopyStatus
    from schedules.models import Schedule

    environments = Environment.objects.filter(project__organisation=organisation)
    last = {}
    for backup in (
        Backup.objects.filter(organisation=organisation)
        .exclude(status__in=["deleting", "deleted"])
        .order_by("environment_id", "-created_at")
        .only("id", "environment_id", "status", "created_at", "completed_at", "name", "kind")
    ):
        last.setdefault(backup.environment_id, backup)
    alerts = dict(
        Alert.objects.filter(
            organisation=organisation, resolved_at__isnull=True, dismissed_at__isnull=True
        )
        .exclude(environment=None)
        .values_list("environment_id")
        .annotate(n=Count("id"))
    )
    storage = dict(
        BackupCopy.objects.filter(backup__organisation=organisation, status=CopyStatus.STORED)
        .values_list("backup__environment_id")
        .annotate(total=Sum("size"))
    )
    now = timezone.now()
    next_run = {}
    for schedule in Schedule.objects.filter(
        environment__in=environments, enabled=True, paused=False
    ).prefetch_related("interval_rules"):
        next_run[schedule.environment_id] = schedule_next_run(schedule, now)
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


def selectors_schedule(environment):
    from schedules.selectors import schedule_find

    return schedule_find(environment=environment)


def schedule_crons(schedule) -> list[str]:
    """Every cron expression a schedule runs on (its crons, frequencies and rules)."""
    from schedules.timing import (
        FREQUENCY_PRESETS,
        interval_rule_to_cron,
        validate_interval_rule,
    )

    crons = []
    for cron, frequency in (
        (schedule.db_cron, schedule.db_frequency),
        (schedule.full_cron, schedule.full_frequency),
    ):
        if cron:
            crons.append(cron)
        elif frequency in FREQUENCY_PRESETS:
            crons.append(FREQUENCY_PRESETS[frequency])
    for rule in schedule.interval_rules.all():
        try:
            crons.append(interval_rule_to_cron(validate_interval_rule(rule.as_seed())))
        except ValueError:
            continue
    return crons


def schedule_next_run(schedule, now: datetime) -> datetime | None:
    from schedules.timing import next_runs

    runs = []
    for cron in schedule_crons(schedule):
        try:
            runs.extend(next_runs(cron, schedule.timezone, now, 1))
        except ValueError:
            continue
    return min(runs) if runs else None


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
        from backups.views import environment_backups_context
        from restores.views import pitr_timeline

        context = super().get_context_data(**kwargs)
        environment = self.environment(self.kwargs["pk"])
        if str(environment.project_id) != str(self.kwargs["project_id"]):
            raise Http404("Environment not found.")
        context["environment"] = environment
        context.update(environment_backups_context(self.request, environment))
        schedule = selectors_schedule(environment)
        context["schedule"] = schedule
        context["next_run"] = schedule_next_run(schedule, timezone.now()) if schedule else None
        context["timeline"] = pitr_timeline(environment)
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
