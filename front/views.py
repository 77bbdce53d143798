"""Pages composed of several apps: the dashboard (with its onboarding checklist), the
project, environment and database pages, and the database form with its connection test.

Like healthchecks' ``hc/front``: these read every app's selectors (backups, schedules,
alerts, restores) and so live above the apps; no app imports ``front``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.generic import TemplateView

from alerts import selectors as alert_selectors
from backups import selectors as backup_selectors
from backups import services as backup_services
from backups.filters import BackupFilterSet
from backups.forms import BackupListFilterForm, BackupTriggerForm
from backups.models import BackupStatus
from backups.selectors import backup_outcome
from config.errors import InvalidInput
from destinations.models import Destination
from drills import selectors as drill_selectors
from front import evidence as evidence_report
from front.charts import duration_chart, size_chart
from organizations import services as organisation_services
from organizations.forms import DatabaseForm
from organizations.models import Database, Environment, Organisation, Project, Role
from organizations.pages import TenantAction, TenantPage, paginate
from organizations.selectors import projects_with_environments
from restores import selectors as restore_selectors
from schedules import selectors as schedule_selectors
from schedules.models import Schedule

CHART_POINTS = 60  # completed backups the size chart draws

# --- reads for the dashboard -----------------------------------------------------------


# Worst first: an environment shows the worst state of its databases' last backups.
STATES = ("failed", "running", "never", "ok")
STATE_LABELS = {
    "failed": "Failing",
    "running": "Running",
    "never": "Never backed up",
    "ok": "Healthy",
}


def state_of(backup) -> str:
    """A database's state from its last backup (None: never backed up)."""
    if backup is None:
        return "never"
    outcome = backup_outcome(backup)
    return outcome if outcome in STATES else "failed"


@dataclass
class DatabaseState:
    database: Database
    last_backup: object | None

    @property
    def state(self) -> str:
        return state_of(self.last_backup)

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]


@dataclass
class EnvironmentSummary:
    environment: Environment
    last_backup: object | None
    next_run: datetime | None
    open_alerts: int
    storage_bytes: int
    databases: list[DatabaseState]

    @property
    def state(self) -> str:
        """Failing when the last backup of any database (or the environment's last backup
        of any kind) failed: one good database does not make a failing one green."""
        states = [row.state for row in self.databases]
        if self.last_backup is not None:
            states.append(state_of(self.last_backup))
        if not states:
            return "never"
        return min(states, key=STATES.index)

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]


def environment_summaries(
    *, organisation: Organisation, environments: list[Environment]
) -> list[EnvironmentSummary]:
    """Per environment: last backup, next scheduled run, open alerts and storage used.

    A few grouped queries for the whole organisation, whatever its size.
    """
    last = backup_selectors.last_backup_by_environment(organisation=organisation)
    alerts = alert_selectors.open_alert_count_by_environment(organisation=organisation)
    storage = backup_selectors.stored_bytes_by_environment(organisation=organisation)
    per_database = backup_selectors.last_backup_by_database(organisation=organisation)
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
            databases=[
                DatabaseState(database=database, last_backup=per_database.get(database.id))
                for database in environment.databases.all()
            ],
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
        context["checklist"] = onboarding_checklist(
            organisation=tenant.organisation, projects=projects, tenant=tenant
        )
        return context


# --- onboarding ----------------------------------------------------------------------------


@dataclass
class Step:
    title: str
    done: bool
    url: str | None
    action: str
    hint: str = ""


def onboarding_checklist(*, organisation: Organisation, projects, tenant) -> list[Step] | None:
    """What an organisation still lacks to be protected: a database, a destination, a first
    backup, a schedule. Each step ticks itself off from the rows; None once all are done."""
    environments = [env for project in projects for env in project.environments.all()]
    databases = [db for env in environments for db in env.databases.all()]
    admin, operator = tenant.can(Role.ADMIN), tenant.can(Role.OPERATOR)
    if not projects:
        add_url = reverse("project-new")
    elif not environments:
        add_url = reverse("environment-new", args=[projects[0].id])
    else:
        add_url = reverse("database-new", args=[environments[0].id])
    has_destination = Destination.objects.filter(organisation=organisation).exists()
    backed_up = organisation.backups.filter(status=BackupStatus.COMPLETED).exists() or (
        organisation.backups.exclude(checksum_sha256="").exists()
    )
    scheduled = Schedule.objects.filter(
        environment__project__organisation=organisation, enabled=True
    ).exists()
    steps = [
        Step(
            "Add a database",
            bool(databases),
            add_url if admin else None,
            "Add a database",
            "A project, an environment, and the database's connection (tested before saving).",
        ),
        Step(
            "Add a destination",
            has_destination,
            reverse("destination-new") if admin else None,
            "Add a destination",
            "Where backups are stored: a local directory or an S3 bucket.",
        ),
        Step(
            "Take the first backup",
            backed_up,
            reverse("database-detail", args=[databases[0].id])
            if databases and operator and has_destination
            else None,
            "Back up now",
            "From the database's page, where its runs and their sizes are shown.",
        ),
        Step(
            "Set a schedule",
            scheduled,
            reverse("schedule-edit", args=[environments[0].id]) if environments and admin else None,
            "Set a schedule",
            "How often each environment is backed up, and how long backups are kept.",
        ),
    ]
    if all(step.done for step in steps):
        return None
    return steps


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
    if form.is_bound and form.is_valid() and (words := form.cleaned_data.get("search", "").strip()):
        filtered = filtered.filter(Q(name__icontains=words) | Q(database__name__icontains=words))
    if not (form.is_bound and form.is_valid() and form.cleaned_data.get("status")):
        # Deleted backups are history: listed when asked for by their status only.
        filtered = filtered.exclude(status=BackupStatus.DELETED)
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


# --- the project page ----------------------------------------------------------------------


class ProjectDetailView(TenantPage, TemplateView):
    """A project's environments with their state, and (admins) edit, delete, add."""

    template_name = "front/project_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        project = (
            self.restrict(Project.objects.prefetch_related("environments__databases"))
            .filter(pk=self.kwargs["pk"])
            .first()
        )
        if project is None:
            raise Http404("Project not found.")
        context["project"] = project
        context["rows"] = environment_summaries(
            organisation=self.organisation, environments=list(project.environments.all())
        )
        return context


# --- the database page ---------------------------------------------------------------------

RECENT_BACKUPS = 10


def _database(page: TenantPage, pk) -> Database:
    database = (
        page.restrict(Database.objects.select_related("environment__project")).filter(pk=pk).first()
    )
    if database is None:
        raise Http404("Database not found.")
    return database


class DatabaseDetailView(TenantPage, TemplateView):
    """One database's health: last runs, success rates, age of the last good backup, size
    and duration charts (this database's backups only), next runs, restores."""

    template_name = "front/database_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        database = _database(self, self.kwargs["pk"])
        now = timezone.now()
        health = backup_selectors.database_health(
            organisation=self.organisation, database=database, now=now
        )
        schedule = schedule_selectors.schedule_find(environment=database.environment)
        next_runs = (
            schedule_selectors.schedule_next_runs(schedule, now=now, count=5)["db"]
            if schedule
            else []
        )
        restores = restore_selectors.restores_for_organisation(
            organisation=self.organisation
        ).filter(Q(target_database=database) | Q(backup__database=database))[:RECENT_BACKUPS]
        recent = backup_selectors.backups_for_database(
            organisation=self.organisation, database=database
        )[:RECENT_BACKUPS]
        context.update(
            database=database,
            environment=database.environment,
            health=health,
            strip=[(run, backup_outcome(run)) for run in health.runs],
            size_chart=size_chart([(c, size, n) for c, size, _, n in health.series]),
            duration_chart=duration_chart(
                [(c, secs, n) for c, _, secs, n in health.series if secs is not None]
            ),
            schedule=schedule,
            next_runs=next_runs,
            restores=list(restores),
            recent=list(recent),
            has_destination=Destination.objects.filter(organisation=self.organisation).exists(),
            **drill_selectors.drill_list_context(organisation=self.organisation, database=database),
        )
        return context


class DatabaseTestView(TenantAction):
    """ "Test connection" on the database page: the saved connection, as a backup makes it."""

    required_role = Role.OPERATOR

    def perform(self, request, **kwargs) -> str:
        database = _database(self, kwargs["pk"])
        result = backup_services.database_connection_test(database=database)
        if not result.ok:
            raise InvalidInput(f"Connection failed: {result.error}")
        return f"Connected: {database.get_engine_display()} {result.version}."

    def success_url(self, **kwargs) -> str:
        return reverse("database-detail", args=[kwargs["pk"]])


class DatabaseFormView(TenantPage, TemplateView):
    """New database (``environment_id``) or edit one (``pk``), admins only. "Test
    connection" connects with the typed values as a backup would (host policy, server
    paths, the engine's driver) and shows the server's version or the exact error, saving
    nothing; "Save" goes through the same services as the API."""

    template_name = "front/database_form.html"
    required_role = Role.ADMIN

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.database = None

    def target(self) -> tuple[Environment, Database | None]:
        if "pk" in self.kwargs:
            self.database = self.database or _database(self, self.kwargs["pk"])
            return self.database.environment, self.database
        return self.environment(self.kwargs["environment_id"]), None

    def initial(self, database: Database | None) -> dict:
        if database is None:
            return {}
        return {
            field: getattr(database, field)
            for field in ("name", "slug", "engine", "host", "port", "username", "database_name")
        }

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        environment, database = self.target()
        context.setdefault(
            "form", DatabaseForm(initial=self.initial(database), editing=database is not None)
        )
        context.update(environment=environment, database=database)
        return context

    def post(self, request, *args, **kwargs):
        environment, database = self.target()
        form = DatabaseForm(request.POST, editing=database is not None)
        context = {"form": form}
        if form.is_valid():
            values = form.service_values()
            try:
                if request.POST.get("action") == "test":
                    context["test"] = self.test(environment, database, values)
                    # The password typed stays in the form, so Save after a test keeps it.
                    form.fields["password"].widget.render_value = True
                else:
                    return self.save(environment, database, values)
            except InvalidInput as exc:
                form.apply_errors(exc)
        status = 200 if "test" in context and not form.errors else 400
        response = self.render_to_response(self.get_context_data(**context), status=status)
        response["Cache-Control"] = "no-store"
        return response

    def test(self, environment: Environment, database: Database | None, values: dict):
        password = values.get("password")
        if password is None:
            password = database.password if database is not None else ""
        checked = {k: v for k, v in values.items() if k not in ("slug", "password")}
        organisation_services.database_check(environment=environment, **checked)
        candidate = Database(environment=environment, password=password, **checked)
        return backup_services.database_connection_test(database=candidate)

    def save(self, environment: Environment, database: Database | None, values: dict):
        if database is None:
            database = organisation_services.database_create(environment=environment, **values)
            messages.success(self.request, f"Added the database “{database.name}”.")
        else:
            values.setdefault("slug", database.slug)
            database = organisation_services.database_update(database=database, **values)
            messages.success(self.request, f"Saved “{database.name}”.")
        return redirect("database-detail", pk=database.pk)


# --- the evidence report ----------------------------------------------------------------------


class EvidenceView(TenantPage, TemplateView):
    """The month's recovery evidence (``front/evidence.py``) for admins, as the page an
    auditor prints or as its PDF: the same document ``GET /api/organizations/{id}/evidence``
    answers. Without ``month``: the current one."""

    required_role = Role.ADMIN

    def get(self, request, *args, **kwargs):
        value = request.GET.get("month") or timezone.now().strftime("%Y-%m")
        fmt = request.GET.get("format") or "html"
        try:
            month = evidence_report.parse_month(value)
        except InvalidInput as exc:
            return HttpResponseBadRequest(exc.message, content_type="text/plain")
        if fmt not in evidence_report.FORMATS:
            return HttpResponseBadRequest("format: html or pdf", content_type="text/plain")
        evidence = evidence_report.evidence_for(organisation=self.organisation, month=month)
        if fmt == "pdf":
            return evidence_report.document_response(evidence, "pdf")
        pdf_url = reverse("evidence") + "?" + urlencode({"month": value, "format": "pdf"})
        html = evidence_report.evidence_html(
            evidence, pdf_url=pdf_url, back_url=reverse("dashboard")
        )
        response = HttpResponse(html, content_type="text/html; charset=utf-8")
        response["Cache-Control"] = "private, no-store"
        return response
