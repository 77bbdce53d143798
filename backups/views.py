"""Backup pages: a backup's detail, the trigger, abort and delete actions, and the
organisation's age encryption settings (the environment's backup list is on the
environment page, ``front``). Reads go through
``backups.selectors``; every write is one call of ``backups.services``."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse
from django.views.generic import TemplateView, View

from backups import selectors, services
from backups.downloads import download_response
from backups.forms import AgeSettingsForm, BackupTriggerForm
from backups.models import Backup, BackupKind, BackupStatus
from backups.progress import backup_progress_event, run_duration
from config.errors import Conflict, InvalidInput
from organizations.models import Role
from organizations.pages import TenantAction, TenantPage, phase_timeline


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


class DatabaseBackupView(TenantAction):
    """ "Back up now" on the database page: this database only (operators)."""

    required_role = Role.OPERATOR

    def perform(self, request, **kwargs) -> str:
        database = selectors.database_get(organisation=self.organisation, reference=kwargs["pk"])
        created = services.backup_request(
            environment=database.environment,
            kind=BackupKind.DATABASE,
            database=database,
            user=request.user,
        )
        return f"Backup started: {', '.join(b.name for b in created)}."

    def success_url(self, **kwargs) -> str:
        return reverse("database-detail", args=[kwargs["pk"]])


class BackupRetryView(TenantAction):
    """ "Retry" on a failed backup: a new backup of the same database and destinations."""

    required_role = Role.OPERATOR

    def perform(self, request, **kwargs) -> str:
        backup = selectors.backup_get(organisation=self.organisation, backup_id=kwargs["pk"])
        self.backup = backup
        created = services.backup_retry(backup=backup, user=request.user)
        return f"Retrying: {', '.join(b.name for b in created)}."

    def success_url(self, **kwargs) -> str:
        backup = getattr(self, "backup", None)
        if backup is not None and backup.database_id:
            return reverse("database-detail", args=[backup.database_id])
        return reverse("backup-detail", args=[kwargs["pk"]])


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
        progress = backup_progress_event(backup)
        context.update(
            backup=backup,
            environment=backup.environment,
            progress=progress,
            phases=phase_timeline(progress["phases"]),
            copies=list(backup.copies.all()),
            # A running backup's page keeps the link hidden until the stream says completed.
            restore_url=restore_url(backup)
            if backup.status == BackupStatus.COMPLETED or backup.is_active
            else None,
            duration=run_duration(backup),
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


class BackupDownloadPageView(TenantPage, View):
    """/backups/<id>/download/ (admins): the API's download, with the page's messages when
    it cannot start (the backup page links here; ``?raw=1`` for the stored bytes)."""

    required_role = Role.ADMIN

    def get(self, request, pk):
        backup = selectors.backup_get(organisation=self.organisation, backup_id=pk)
        try:
            download = services.backup_download(backup=backup, raw=request.GET.get("raw") == "1")
        except Conflict as exc:
            messages.error(request, exc.message)
            return redirect("backup-detail", pk=backup.pk)
        return download_response(download)


class AgeSettingsView(TenantPage, TemplateView):
    """/settings/encryption/: the organisation's age recipients and identity (admins)."""

    template_name = "backups/encryption_settings.html"
    required_role = Role.ADMIN

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        age = selectors.age_settings_of(self.organisation)
        context["age"] = age
        context.setdefault(
            "form", AgeSettingsForm(initial={"recipients": "\n".join(age["recipients"])})
        )
        return context

    def post(self, request, *args, **kwargs):
        form = AgeSettingsForm(request.POST)
        if form.is_valid():
            identity = form.cleaned_data["identity"] or None
            if form.cleaned_data["remove_identity"]:
                identity = ""
            try:
                services.age_keys_update(
                    organisation=self.organisation,
                    recipients=form.cleaned_data["recipients"].split(),
                    identity=identity,
                )
            except InvalidInput as exc:
                for field, problems in exc.fields.items():
                    for problem in problems:
                        form.add_error(field if field in form.fields else None, problem)
            else:
                messages.success(request, "Encryption settings saved; new backups use them.")
                return redirect("encryption-settings")
        return self.render_to_response(self.get_context_data(form=form), status=400)
