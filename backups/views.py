"""Backup pages: the environment's backup list and chart, a backup's detail, and the
trigger, abort and delete actions. Reads go through ``backups.selectors`` and the
shared ``BackupFilterSet``; every write is one call of ``backups.services``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib import messages
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.views.generic import TemplateView

from backups import selectors, services
from backups.filters import BackupFilterSet
from backups.forms import BackupListFilterForm, BackupTriggerForm
from backups.models import Backup, BackupStatus
from backups.progress import backup_progress_event
from config.errors import Conflict, InvalidInput
from organizations.models import Role
from organizations.pages import TenantAction, TenantPage, paginate, phase_timeline

CHART_POINTS = 60


# --- the environment's backups ------------------------------------------------------------


def environment_backups_context(request, environment) -> dict:
    """The backup list, its filter form, the size chart and the trigger form."""
    organisation = environment.project.organisation
    backups = selectors.backups_for_environment(organisation=organisation, environment=environment)
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


@dataclass
class Chart:
    width: int
    height: int
    points: list[dict]
    polyline: str
    y_ticks: list[dict]
    x_labels: list[dict]
    summary: str


def human_bytes(value: float | None) -> str:
    return "—" if value is None else filesizeformat(value).replace("\xa0", " ")


def _when(value: datetime, fmt: str) -> str:
    return date_format(timezone.localtime(value), fmt)


def size_chart(rows: list[tuple[datetime, int, str]], width=640, height=180) -> Chart | None:
    """Server-rendered SVG geometry of backup size over time (oldest left)."""
    if not rows:
        return None
    left, right, top, bottom = 64, 12, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    first, last = rows[0][0], rows[-1][0]
    span = (last - first).total_seconds() or 1.0
    peak = max(size for _, size, _ in rows) or 1
    points = []
    for created, size, name in rows:
        x = left + (
            plot_w * (created - first).total_seconds() / span if len(rows) > 1 else plot_w / 2
        )
        y = top + plot_h * (1 - size / peak)
        points.append(
            {
                "x": round(x, 1),
                "y": round(y, 1),
                "label": f"{name}: {human_bytes(size)}, {_when(created, 'j M Y H:i')}",
            }
        )
    y_ticks = [
        {"y": round(top + plot_h * (1 - fraction), 1), "label": human_bytes(peak * fraction)}
        for fraction in (0, 0.5, 1)
    ]
    x_labels = [
        {"x": left, "label": date_format(timezone.localtime(first), "j M"), "anchor": "start"}
    ]
    if len(rows) > 1:
        x_labels.append(
            {
                "x": left + plot_w,
                "label": date_format(timezone.localtime(last), "j M"),
                "anchor": "end",
            }
        )
    sizes = [size for _, size, _ in rows]
    summary = (
        f"{len(rows)} completed backup{'s' if len(rows) != 1 else ''} "
        f"from {_when(first, 'j M Y')} to {_when(last, 'j M Y')}; "
        f"smallest {human_bytes(min(sizes))}, largest {human_bytes(max(sizes))}, "
        f"latest {human_bytes(sizes[-1])}."
    )
    return Chart(
        width=width,
        height=height,
        points=points,
        polyline=" ".join(f"{p['x']},{p['y']}" for p in points),
        y_ticks=y_ticks,
        x_labels=x_labels,
        summary=summary,
    )


class BackupTriggerView(TenantAction):
    """ "Back up now" on the environment page (operators)."""

    required_role = Role.OPERATOR

    def perform(self, request, **kwargs) -> str:
        environment = self.environment(kwargs["environment_id"])
        self.target = environment
        form = BackupTriggerForm(request.POST, environment=environment)
        if not form.is_valid():
            errors = "; ".join(e for errs in form.errors.values() for e in errs)
            raise InvalidInput(errors or "Choose what to back up.")
        created = services.backup_request(
            environment=environment, kind=form.cleaned_data["kind"], user=request.user
        )
        names = ", ".join(b.name for b in created)
        return f"Backup started: {names}."

    def success_url(self, **kwargs) -> str:
        environment = getattr(self, "target", None) or self.environment(kwargs["environment_id"])
        return reverse("environment-detail", args=[environment.project_id, environment.id])


# --- one backup ---------------------------------------------------------------------------


def restore_url(backup: Backup) -> str | None:
    """The restore form, once the restores pages exist."""
    try:
        return reverse("restore-new", args=[backup.id])
    except NoReverseMatch:
        return None


class BackupDetailView(TenantPage, TemplateView):
    template_name = "backups/backup_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        backup = selectors.backup_get(organisation=self.organisation, backup_id=kwargs["pk"])
        context.update(
            backup=backup,
            environment=backup.environment,
            progress=backup_progress_event(backup),
            phases=phase_timeline(backup),
            copies=list(backup.copies.all()),
            restore_url=restore_url(backup) if backup.status == BackupStatus.COMPLETED else None,
            can_delete=backup.status not in (BackupStatus.DELETING, BackupStatus.DELETED)
            and not backup.is_active,
        )
        return context


class BackupDeleteView(TenantPage, TemplateView):
    """GET asks for confirmation; POST deletes (asynchronously) from every destination."""

    template_name = "backups/backup_confirm_delete.html"
    required_role = Role.OPERATOR

    def backup(self) -> Backup:
        return selectors.backup_get(organisation=self.organisation, backup_id=self.kwargs["pk"])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["backup"] = self.backup()
        return context

    def post(self, request, *args, **kwargs):
        backup = self.backup()
        try:
            services.backup_delete(backup=backup)
        except Conflict as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{backup.name} is being deleted from every destination.")
        return redirect("backup-detail", pk=backup.pk)


class BackupAbortView(TenantAction):
    required_role = Role.OPERATOR

    def perform(self, request, **kwargs) -> str:
        backup = selectors.backup_get(organisation=self.organisation, backup_id=kwargs["pk"])
        backup = services.backup_abort(backup=backup)
        return f"{backup.name}: {backup.get_status_display().lower()}."

    def success_url(self, **kwargs) -> str:
        return reverse("backup-detail", args=[kwargs["pk"]])
