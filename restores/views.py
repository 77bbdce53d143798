"""Restore pages: the restore form (with the PITR timeline), restore logs with live
progress, and the undo action. Writes are ``restores.services``; reads
``restores.selectors`` (the PITR timeline too)."""

from __future__ import annotations

from datetime import UTC

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.views.generic import TemplateView

from backups import selectors as backup_selectors
from backups.models import BackupStatus
from backups.progress import run_duration
from config.errors import ApplicationError
from organizations.models import Role
from organizations.pages import TenantAction, TenantPage, paginate, phase_timeline
from restores import selectors
from restores.forms import RestoreForm, name_to_type
from restores.plan import PITR_KINDS
from restores.services import restore_request, restore_undo


class RestoreNewView(TenantPage, TemplateView):
    """The restore form for one completed backup (operators)."""

    template_name = "restores/restore_form.html"
    required_role = Role.OPERATOR

    def backup(self):
        return backup_selectors.backup_get(
            organisation=self.organisation, backup_id=self.kwargs["pk"]
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        backup = kwargs.get("backup") or self.backup()
        timeline = selectors.pitr_timeline(backup.environment)
        restorable = backup.status == BackupStatus.COMPLETED
        form = kwargs.get("form") or RestoreForm(
            backup=backup, pitr_available=_pitr_available(backup, timeline)
        )
        # What the restore would replace, before the user confirms it.
        plan = kwargs.get("plan") or (_plan(backup, {}) if restorable else None)
        target = (
            form.cleaned_data.get("target_environment")
            if form.is_bound and hasattr(form, "cleaned_data")
            else None
        ) or backup.environment
        expected = name_to_type(backup=backup, target=target, plan=plan or {})
        context.update(
            backup=backup,
            timeline=timeline,
            form=form,
            restorable=restorable,
            plan=plan,
            name_to_type=expected,
            in_place=target == backup.environment,
        )
        return context

    def post(self, request, *args, **kwargs):
        backup = self.backup()
        timeline = selectors.pitr_timeline(backup.environment)
        form = RestoreForm(
            request.POST, backup=backup, pitr_available=_pitr_available(backup, timeline)
        )
        previewing = "preview" in request.POST
        if previewing:
            form.fields["confirm"].required = False
        if not form.is_valid():
            context = self.get_context_data(backup=backup, form=form)
            return self.render_to_response(context, status=400)
        if previewing:
            context = self.get_context_data(
                backup=backup, form=form, plan=_plan(backup, form.cleaned_data)
            )
            return self.render_to_response(context)
        target = form.cleaned_data["target_environment"]
        plan = _plan(backup, form.cleaned_data)
        expected = name_to_type(backup=backup, target=target, plan=plan)
        if expected and form.cleaned_data.get("confirm_name", "").strip() != expected:
            form.add_error(
                "confirm_name",
                f"Type “{expected}” to confirm: this restore replaces it"
                + (
                    " in the backup's own environment."
                    if target.pk == backup.environment_id
                    else "."
                ),
            )
            context = self.get_context_data(backup=backup, form=form, plan=plan)
            return self.render_to_response(context, status=400)
        try:
            restore = restore_request(
                backup=backup, **_request_of(backup, form.cleaned_data), user=request.user
            )
        except ApplicationError as exc:
            form.add_service_errors(exc.fields, exc.message)
        else:
            messages.success(request, f"Restore of {backup.name} into {target} started.")
            return redirect("restore-detail", pk=restore.pk)
        context = self.get_context_data(backup=backup, form=form, plan=plan)
        return self.render_to_response(context, status=400)


def _request_of(backup, data: dict) -> dict:
    """The restore request (and plan) arguments a valid form spells."""
    target = data.get("target_environment") or backup.environment
    moment = data.get("pitr_timestamp")
    request = {
        "target_type": "same" if target.pk == backup.environment_id else "other",
        "target_environment": target,
        "target_database": data.get("target_database"),
        "pitr_timestamp": moment.replace(tzinfo=UTC) if moment else None,
    }
    if "take_safety_backup" in data:
        request["take_safety_backup"] = data["take_safety_backup"]
    return request


def _plan(backup, data: dict) -> dict:
    """The plan of the form's restore for the page, or why it would be refused."""
    request = _request_of(backup, data)
    request.pop("take_safety_backup", None)
    try:
        plan = selectors.restore_plan(backup=backup, **request)
    except ApplicationError as exc:
        return {"error": exc.message}
    return {"members": plan.records(), "warnings": plan.warnings}


def _pitr_available(backup, timeline) -> bool:
    """A point in time applies to a backup of one PostgreSQL database with a WAL window."""
    database = backup.database
    return bool(timeline) and (
        backup.kind in PITR_KINDS and database is not None and database.engine == "postgresql"
    )


class RestoreListView(TenantPage, TemplateView):
    template_name = "restores/restore_list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        restores = selectors.restores_for_organisation(organisation=self.organisation)
        context["page"], context["query"] = paginate(self.request, restores)
        return context


class RestoreDetailView(TenantPage, TemplateView):
    """The restore log: status, phases, live progress, message, undo."""

    template_name = "restores/restore_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        restore = selectors.restore_get(organisation=self.organisation, restore_id=kwargs["pk"])
        progress = selectors.restore_progress_event(restore)
        context.update(
            restore=restore,
            progress=progress,
            phases=phase_timeline(progress["phases"]),
            can_undo=selectors.restore_undoable(restore),
            duration=run_duration(restore),
            undone_by=list(restore.undone_by.all()),
        )
        return context


class RestoreUndoView(TenantAction):
    """Restore the safety backup into the same target."""

    required_role = Role.OPERATOR

    def perform(self, request, **kwargs) -> str:
        restore = selectors.restore_get(organisation=self.organisation, restore_id=kwargs["pk"])
        self.undo = restore_undo(restore=restore, user=request.user)
        return "Undo started: the safety backup is being restored."

    def success_url(self, **kwargs) -> str:
        undo = getattr(self, "undo", None)
        return reverse("restore-detail", args=[undo.pk if undo else kwargs["pk"]])
