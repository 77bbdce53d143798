"""Schedule editor, its live next-runs preview, and the retention preview and apply pages.

Writes are ``schedules.services.schedule_upsert`` and ``schedules.enforcement``'s
``retention_enforce``; reads are ``schedules.selectors``.
"""

from __future__ import annotations

from itertools import islice

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse, QueryDict
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.http import urlencode
from django.views.generic import TemplateView

from config.errors import InvalidInput
from organizations.models import Role
from organizations.pages import TenantPage, paginate
from schedules import selectors
from schedules.enforcement import retention_enforce
from schedules.forms import RULES, RetentionForm, ScheduleForm
from schedules.models import RETENTION_FIELDS
from schedules.services import api_name, schedule_upsert
from schedules.timing import describe_cron

# Backups listed per page of the retention preview, and named on the apply page.
PREVIEW_PAGE_SIZE = 100
APPLY_NAMED = 20

PREVIEW_FIELDS = {
    "timezone",
    "db_frequency",
    "db_cron",
    "full_frequency",
    "full_cron",
    "hourly_minute",
    "daily_hour",
    "daily_minute",
    "weekly_day",
    "weekly_hour",
    "weekly_minute",
}


class _EnvironmentPage(TenantPage):
    def env(self):
        if not hasattr(self, "_env"):
            self._env = self.environment(self.kwargs["environment_id"])
        return self._env


class ScheduleEditView(_EnvironmentPage, TemplateView):
    """Everyone reads the schedule; admins change it."""

    template_name = "schedules/schedule_edit.html"

    def form(self, data=None) -> ScheduleForm:
        schedule = selectors.schedule_find(environment=self.env())
        return ScheduleForm(
            data,
            organisation=self.organisation,
            initial=ScheduleForm.initial_for(schedule),
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = kwargs.get("form") or self.form()
        schedule = selectors.schedule_find(environment=self.env())
        if schedule is None and not form.is_bound:
            # Nothing is saved, so nothing runs: the form's defaults are a proposal only.
            preview = None
        elif not form.is_bound:
            # Preview the saved schedule: bind its own values, without showing errors.
            preview_data = {k: v for k, v in form.initial.items() if v not in (None, "")}
            preview = ScheduleForm(_as_data(preview_data), organisation=self.organisation)
            preview.is_valid()
        else:
            preview = form
        context.update(
            environment=self.env(),
            schedule=schedule,
            form=form,
            runs=_runs(preview) if preview is not None else _NO_RUNS,
            rules=RULES,
            retention_grid=form.retention_grid(),
        )
        return context

    def post(self, request, *args, **kwargs):
        if not self.tenant.can(Role.ADMIN):
            raise PermissionDenied("Changing a schedule needs the admin role.")
        form = self.form(request.POST)
        if form.is_valid():
            try:
                _, created = schedule_upsert(environment=self.env(), **form.service_arguments())
            except InvalidInput as exc:
                form.add_service_errors(exc.fields or {"": [exc.message]})
            else:
                messages.success(request, "Schedule created." if created else "Schedule saved.")
                return redirect("schedule-edit", environment_id=self.env().id)
        return self.render_to_response(self.get_context_data(form=form), status=400)


def _as_data(initial: dict) -> QueryDict:
    data = QueryDict(mutable=True)
    for key, value in initial.items():
        if isinstance(value, list):
            data.setlist(key, [str(getattr(v, "pk", v)) for v in value])
        elif isinstance(value, bool):
            if value:
                data[key] = "on"
        else:
            data[key] = str(value)
    return data


_NO_RUNS = {
    "db": {"cron": "", "description": "", "runs": []},
    "full": {"cron": "", "description": "", "runs": []},
    "rules": 0,
}


def _runs(form: ScheduleForm) -> dict:
    """Next five runs per kind, with a description, or the errors that prevent them. Each
    run is written out in the schedule's own time zone here: the template's date filter
    would show it in the page's (UTC)."""
    try:
        runs = form.next_runs(timezone.now(), 5)
    except ValueError:
        runs = {"db": [], "full": []}
    crons = form.crons() if hasattr(form, "cleaned_data") else {"db": "", "full": ""}
    return {
        kind: {
            "cron": crons.get(kind, ""),
            "description": describe_cron(crons[kind]) if crons.get(kind) else "",
            "runs": [
                {"iso": r.isoformat(), "text": r.strftime("%a %d %b %Y, %H:%M %Z")}
                for r in runs.get(kind, [])
            ],
        }
        for kind in ("db", "full")
    } | {"rules": len(getattr(form, "rules", []))}


class ScheduleNextRunsView(_EnvironmentPage, TemplateView):
    """JSON for the editor's script: the next five runs of the form as it stands."""

    def get(self, request, *args, **kwargs):
        self.env()
        form = ScheduleForm(request.GET, organisation=self.organisation)
        form.is_valid()
        runs = _runs(form)
        errors = {
            name: [str(e) for e in errs]
            for name, errs in form.errors.items()
            if name in PREVIEW_FIELDS or name.endswith("_enabled")
        }
        return JsonResponse(
            {
                "timezone": form.cleaned_data.get("timezone", ""),
                "errors": errors,
                **{
                    kind: {
                        "cron": runs[kind]["cron"],
                        "description": runs[kind]["description"],
                        "runs": runs[kind]["runs"],
                    }
                    for kind in ("db", "full")
                },
            }
        )


# --- retention ----------------------------------------------------------------------------


def _overrides(form: RetentionForm) -> dict:
    return {api_name(name): form.cleaned_data.get(name) for name in RETENTION_FIELDS}


class RetentionPreviewView(_EnvironmentPage, TemplateView):
    """The proposed policy (from the query string) against the current one, per backup."""

    template_name = "schedules/retention_preview.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        environment = self.env()
        schedule = selectors.schedule_find(environment=environment)
        current_values = {
            name: getattr(schedule, name) if schedule else None for name in RETENTION_FIELDS
        }
        form = RetentionForm(self.request.GET or None, initial=current_values)
        current = selectors.retention_preview(environment=environment, overrides={})
        proposed = current
        proposing = form.is_bound and form.is_valid()
        if proposing:
            try:
                proposed = selectors.retention_preview(
                    environment=environment, overrides=_overrides(form)
                )
            except InvalidInput as exc:
                form.add_error(None, exc.message)
                proposing = False
        # Every decision counts in the totals; only one page of them is shown.
        page, page_query = paginate(self.request, proposed.plan.decisions, PREVIEW_PAGE_SIZE)
        rows = [
            {
                "backup": row.backup,
                "proposed": row.decision,
                "current": current.plan.decision(row.decision.backup_id),
            }
            for row in selectors.retention_preview_rows(
                environment=environment, decisions=page.object_list
            )
        ]
        # Both plans cover the same backups, so they list the same databases.
        current_lines = {(line.scope, line.database_id): line for line in current.by_database}
        database_rows = [
            {"proposed": line, "current": current_lines.get((line.scope, line.database_id))}
            for line in proposed.by_database
        ]
        context.update(
            environment=environment,
            schedule=schedule,
            form=form,
            proposing=proposing,
            changed=proposing and _overrides(form) != _current_api(current_values),
            current=current,
            proposed=proposed,
            rows=rows,
            page=page,
            page_query=page_query,
            database_rows=database_rows,
            policy_rows=_policy_rows(current_values, form if proposing else None),
            query=page_query,
            current_query=urlencode({k: v for k, v in current_values.items() if v is not None}),
            retention_grid=form.retention_grid(),
        )
        return context


def _current_api(values: dict) -> dict:
    return {api_name(name): value for name, value in values.items()}


def _policy_rows(current: dict, form: RetentionForm | None) -> list[dict]:
    rows = []
    for name in RETENTION_FIELDS:
        proposed = form.cleaned_data.get(name) if form is not None else current[name]
        if current[name] is None and proposed is None:
            continue
        rows.append(
            {
                "label": RetentionForm.retention_fields()[name].label,
                "current": current[name],
                "proposed": proposed,
                "changed": current[name] != proposed,
            }
        )
    return rows


class RetentionApplyView(_EnvironmentPage, TemplateView):
    """GET: confirm (what will be deleted). POST: save the policy, then enforce it now."""

    template_name = "schedules/retention_apply.html"
    required_role = Role.ADMIN

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = kwargs.get("form") or RetentionForm(self.request.GET)
        if not form.is_valid():
            context.update(environment=self.env(), form=form, invalid=True)
            return context
        preview = selectors.retention_preview(environment=self.env(), overrides=_overrides(form))
        # The first few are named; the count is the plan's.
        first_doomed = list(islice((d for d in preview.plan.decisions if not d.keep), APPLY_NAMED))
        doomed = [
            row.backup
            for row in selectors.retention_preview_rows(
                environment=self.env(), decisions=first_doomed
            )
        ]
        context.update(
            environment=self.env(),
            form=form,
            preview=preview,
            doomed=doomed,
            more_doomed=preview.plan.deleted_count - len(doomed),
            hidden=[(name, form.cleaned_data.get(name)) for name in RETENTION_FIELDS],
        )
        return context

    def post(self, request, *args, **kwargs):
        form = RetentionForm(request.POST)
        if not form.is_valid() or request.POST.get("confirm") != "yes":
            return self.render_to_response(self.get_context_data(form=form), status=400)
        environment = self.env()
        try:
            schedule_upsert(environment=environment, **form.retention_values())
        except InvalidInput as exc:
            messages.error(request, exc.message)
            return redirect("retention-preview", environment_id=environment.id)
        removed = retention_enforce(environment=environment)
        messages.success(
            request,
            f"Retention policy saved; {len(removed)} backup(s) are being deleted.",
        )
        return redirect("environment-detail", environment.project_id, environment.id)
