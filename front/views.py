"""Pages composed of several apps: the dashboard and the environment page.

Like healthchecks' ``hc/front``: these read every app's selectors (backups, schedules,
alerts, restores) and so live above the apps; no app imports ``front``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.http import Http404
from django.utils import timezone
from django.views.generic import TemplateView

from alerts import selectors as alert_selectors
from backups import selectors as backup_selectors
from backups.filters import BackupFilterSet
from backups.forms import BackupListFilterForm, BackupTriggerForm
from backups.models import BackupStatus
from drills import selectors as drill_selectors
from front.charts import size_chart
from organizations.models import Environment, Organisation
from organizations.pages import TenantPage, paginate
from organizations.selectors import projects_with_environments
from restores import selectors as restore_selectors
from schedules import selectors as schedule_selectors

CHART_POINTS = 60  # completed backups the size chart draws

# --- reads for the dashboard -----------------------------------------------------------


@dataclass
class EnvironmentSummary:
    environment: Environment
    last_backup: object | None
    next_run: datetime | None
    open_alerts: int
    storage_bytes: int


def environment_summaries(
    *, organisation: Organisation, environments: list[Environment]
) -> list[EnvironmentSummary]:
    """Per environment: last backup, next scheduled run, open alerts and storage used.

    A few grouped queries for the whole organisation, whatever its size.
    """
    last = backup_selectors.last_backup_by_environment(organisation=organisation)
    alerts = alert_selectors.open_alert_count_by_environment(organisation=organisation)
    storage = backup_selectors.stored_bytes_by_environment(organisation=organisation)
    next_run = schedule_selectors.next_run_by_environment(
        organisation=organisation, now=timezone.now()
    )
    return [
        EnvironmentSummary(
            environment=environment,
            last_backup=last.get(environment.id),
            next_run=next_run.get(environment.id),
            open_alerts=alerts.get(environment.id, 0),
            storage_bytes=storage.get(environment.id) or 0,
        )
        for environment in environments
    ]


# --- pages -------------------------------------------------------------------------------


class DashboardView(TenantPage, TemplateView):
    template_name = "front/dashboard.html"
    needs_tenant = False

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tenant = self.request.tenant
        if tenant is None:
            context["projects"] = []
            return context
        projects = list(projects_with_environments(organisation=tenant.organisation))
        environments = [env for project in projects for env in project.environments.all()]
        summaries = environment_summaries(
            organisation=tenant.organisation, environments=environments
        )
        by_environment = {summary.environment.id: summary for summary in summaries}
        for project in projects:
            project.rows = [by_environment[env.id] for env in project.environments.all()]
        context["projects"] = projects
        return context


# --- the environment page -------------------------------------------------------------


def environment_backups_context(request, environment) -> dict:
    """The backup list, its filter form, the size chart and the trigger form."""
    organisation = environment.project.organisation
    backups = backup_selectors.backups_for_environment(
        organisation=organisation, environment=environment
    )
    form = BackupListFilterForm(request.GET or None)
    filtered = backups
    if form.is_bound and form.is_valid():
        filterset = BackupFilterSet(data=form.filter_params(), queryset=backups)
        if filterset.is_valid():
            filtered = filterset.qs
        else:  # pragma: no cover - the form only produces values the filterset accepts
            for name, errors in filterset.errors.items():
                form.add_error(None, f"{name}: {' '.join(errors)}")
    elif form.is_bound:
        filtered = backups.none()
    page, query = paginate(request, filtered)
    completed = list(
        backups.filter(status=BackupStatus.COMPLETED, size__isnull=False)
        .order_by("-created_at")
        .values_list("created_at", "size", "name")[:CHART_POINTS]
    )
    return {
        "filter_form": form,
        "page": page,
        "query": query,
        "chart": size_chart(list(reversed(completed))),
        "trigger_form": BackupTriggerForm(environment=environment),
    }


class EnvironmentDetailView(TenantPage, TemplateView):
    """The environment page: its backups (filtered, paged), a size chart, a trigger."""

    template_name = "front/environment_detail.html"

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
        context.update(
            drill_selectors.drills_environment_context(
                organisation=self.request.tenant.organisation, environment=environment
            )
        )
        return context
