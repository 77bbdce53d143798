"""Organisation pages: signing in (with its one-time code step), the account's two-factor
page, switching organisation, API tokens, members, the organisation's security settings, and
creating, editing and deleting projects and environments (and deleting databases).

Every write is one call of ``organizations.services``, the API's too, so a page refuses
exactly what the API refuses, each problem shown on its field. Admins create, edit and
delete; viewers and operators get a 403 here, as from the API. The base of every page
(``TenantPage``, ``TenantAction``) is ``organizations.pages``; the pages composed of several
apps (dashboard, project, environment and database pages, the database form with its
connection test) are ``front``.
"""

from __future__ import annotations

import django_otp
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, resolve_url
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django.views.generic import TemplateView

from config.errors import ApplicationError, Conflict, InvalidInput
from organizations import services, two_factor
from organizations.forms import (
    EnvironmentForm,
    MemberAddForm,
    MemberRoleForm,
    ProjectForm,
)
from organizations.lockout import lockout_message, seconds_until_unlocked
from organizations.models import ApiToken, Database, Environment, Membership, Project, Role
from organizations.pages import TenantAction, TenantPage
from organizations.services import api_token_create, api_token_revoke
from organizations.tenancy import SESSION_KEY, memberships_of, tenant_for_html


def _safe_next(request, url: str) -> str:
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return resolve_url(settings.LOGIN_REDIRECT_URL)


# --- signing in ------------------------------------------------------------------------


class CodeForm(forms.Form):
    otp_token = forms.CharField(
        label="Code",
        max_length=16,
        strip=True,
        help_text="The 6-digit code your authenticator app shows now, or a recovery code.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class SignInCodeForm(CodeForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["otp_token"].widget.attrs["autofocus"] = True  # the page's one field


class SignInView(auth_views.LoginView):
    """/login/: the password; a local account with a two-factor device then gets the code
    step (``SignInCodeView``) and is signed in only once the code is right."""

    template_name = "login.html"

    def form_valid(self, form):
        user = form.get_user()
        if two_factor.confirmed_device(user) is None:
            two_factor.sign_in_pending_clear(self.request)
            return super().form_valid(form)
        two_factor.sign_in_pending_set(
            self.request, user=user, backend=user.backend, next_url=self.get_redirect_url()
        )
        return redirect("login-code")


@method_decorator([sensitive_post_parameters("otp_token"), csrf_protect, never_cache], "dispatch")
class SignInCodeView(TemplateView):
    """/login/code/: the one-time code after a right password (see ``two_factor``)."""

    template_name = "login_code.html"

    def dispatch(self, request, *args, **kwargs):
        self.pending = two_factor.sign_in_pending(request)
        if self.pending is None:
            messages.info(request, "Enter your username and password to sign in.")
            return redirect("login")
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", SignInCodeForm())
        context["username"] = self.pending.user.get_username()
        return context

    def post(self, request, *args, **kwargs):
        form = SignInCodeForm(request.POST)
        user = self.pending.user
        device = None
        if form.is_valid():
            device = two_factor.code_check(request, user=user, code=form.cleaned_data["otp_token"])
        if getattr(request, "axes_locked_out", False):
            # axes' middleware answers with the lockout page; the password is asked again.
            two_factor.sign_in_pending_clear(request)
            return self.render_to_response(self.get_context_data(form=form), status=429)
        if device is None:
            if form.is_valid():
                form.add_error(
                    "otp_token", two_factor.wrong_code_message(two_factor.confirmed_device(user))
                )
            return self.render_to_response(self.get_context_data(form=form))
        two_factor.sign_in_pending_clear(request)
        user.otp_device = device  # django-otp's login signal marks the session verified
        auth_login(request, user, backend=self.pending.backend)
        return redirect(_safe_next(request, self.pending.next_url))


# --- the account's two-factor page --------------------------------------------------------


class TwoFactorView(LoginRequiredMixin, TemplateView):
    """/account/two-factor/: set up (QR code and key, confirmed by a code), verify this
    session, or turn two-factor off (with a code). Every page of an organisation that
    needs it sends its members here until done (``organizations.tenancy``)."""

    template_name = "two_factor.html"

    def _next(self) -> str:
        wanted = self.request.POST.get("next") or self.request.GET.get("next", "")
        return wanted if wanted and _safe_next(self.request, wanted) == wanted else ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        request, user = self.request, self.request.user
        device = two_factor.confirmed_device(user)
        pending = None if device else two_factor.unconfirmed_device(user)
        tenant = tenant_for_html(request)
        organisation = tenant.organisation if tenant else None
        context.update(
            device=device,
            pending=pending,
            verified=bool(user.is_verified()),
            recovery_left=two_factor.recovery_codes_left(user) if device else 0,
            required_by=two_factor.organisations_requiring(user),
            acting_requires=bool(organisation and organisation.require_two_factor),
            organisation=organisation,
            next=self._next(),
        )
        context.setdefault("form", CodeForm())
        if pending is not None:
            context["qr_svg"] = mark_safe(two_factor.qr_svg(pending))  # noqa: S308 - drawn here
            context["secret"] = two_factor.secret_of(pending)
        return context

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response["Cache-Control"] = "no-store"  # the key of a device being set up
        return response

    def post(self, request, *args, **kwargs):
        action = request.POST.get("action")
        user = request.user
        form = CodeForm(request.POST)
        try:
            if action == "start":
                two_factor.totp_device_start(user=user)
                return self._back()
            if action == "recovery" and user.is_verified():
                return self._codes(two_factor.recovery_codes_create(user=user))
            if not form.is_valid():
                return self._again(form)
            code = form.cleaned_data["otp_token"]
            if action == "confirm":
                device = two_factor.totp_device_confirm(user=user, code=code)
                django_otp.login(request, device)
                messages.success(request, "Two-factor authentication is on.")
                return self._codes(two_factor.recovery_codes_create(user=user))
            if action == "verify":
                device = two_factor.confirmed_device(user)
                if device is None or not two_factor.code_check(request, user=user, code=code):
                    problem = two_factor.wrong_code_message(device)
                    if getattr(request, "axes_locked_out", False):
                        # Signed in already: this page says so rather than axes' sign-in page.
                        request.axes_locked_out = False
                        wait = seconds_until_unlocked(request, request.axes_credentials)
                        problem = lockout_message(wait)
                    form.add_error("otp_token", problem)
                    return self._again(form)
                django_otp.login(request, device)
                messages.success(request, "This session is verified.")
                return self._done()
            if action == "disable":
                two_factor.totp_device_remove(user=user, code=code)
                messages.success(request, "Two-factor authentication is off.")
                return self._back()
        except two_factor.InvalidCode as exc:
            form.add_error("otp_token", exc.message)
            return self._again(form)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return self._back()
        return self._back()

    def _again(self, form):
        response = self.render_to_response(self.get_context_data(form=form), status=400)
        response["Cache-Control"] = "no-store"
        return response

    def _codes(self, codes: list[str]):
        # Rendered, not redirected: the codes are stored only as digests, so this response
        # is the one place they appear (as a new API token's value).
        response = self.render_to_response(self.get_context_data(new_codes=codes))
        response["Cache-Control"] = "no-store"
        return response

    def _back(self):
        url = reverse("two-factor")
        if nxt := self._next():
            url += "?" + urlencode({"next": nxt})
        return redirect(url)

    def _done(self):
        return redirect(self._next() or "dashboard")


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


# --- the organisation's security settings ------------------------------------------------


class SecuritySettingsForm(forms.Form):
    require_two_factor = forms.BooleanField(
        required=False,
        label="Require two-factor authentication",
        help_text=(
            "Members must sign in with a one-time code to act in this organisation; those "
            "without one are sent to set it up first."
        ),
    )


class SecuritySettingsView(TenantPage, TemplateView):
    """/settings/security/: whether the organisation requires two-factor (admins), and
    which members have it."""

    template_name = "security_settings.html"
    required_role = Role.ADMIN

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault(
            "form",
            SecuritySettingsForm(
                initial={"require_two_factor": self.organisation.require_two_factor}
            ),
        )
        context["members"] = two_factor.members_two_factor(self.organisation)
        return context

    def post(self, request, *args, **kwargs):
        form = SecuritySettingsForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        required = form.cleaned_data["require_two_factor"]
        changed = two_factor.organisation_two_factor_set(
            organisation=self.organisation, required=required, actor=request.user
        )
        if changed and required:
            messages.success(
                request,
                f"{self.organisation.name} now requires two-factor authentication; members "
                "without it are asked to set it up.",
            )
        elif changed:
            messages.success(
                request, f"{self.organisation.name} no longer requires two-factor authentication."
            )
        return redirect("security-settings")


# --- projects, environments, databases -----------------------------------------------------


def project_url(project: Project) -> str:
    return reverse("project-detail", args=[project.id])


def environment_url(environment: Environment) -> str:
    return reverse("environment-detail", args=[environment.project_id, environment.id])


class _ObjectForm(TenantPage, TemplateView):
    """GET shows the form; POST calls one service and goes to the object's page, or shows
    the form again (400) with each problem on its field. Admins only."""

    template_name = "organizations/form.html"
    required_role = Role.ADMIN
    form_class = ProjectForm

    def initial(self) -> dict:
        return {}

    def page(self) -> dict:
        """title, crumbs [(label, url)], submit, cancel_url."""
        raise NotImplementedError

    def save(self, values: dict):
        raise NotImplementedError

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", self.form_class(initial=self.initial()))
        context.update(self.page())
        return context

    def post(self, request, *args, **kwargs):
        form = self.form_class(request.POST)
        if form.is_valid():
            try:
                obj, url = self.save(form.service_values())
            except InvalidInput as exc:
                form.apply_errors(exc)
            else:
                messages.success(request, f"Saved “{obj.name}”.")
                return redirect(url)
        return self.render_to_response(self.get_context_data(form=form), status=400)


class ProjectCreateView(_ObjectForm):
    def page(self) -> dict:
        return {
            "title": "New project",
            "crumbs": [("Dashboard", reverse("dashboard"))],
            "submit": "Create project",
            "cancel_url": reverse("dashboard"),
            "intro": "A project groups the environments (production, staging…) of one application.",
        }

    def save(self, values: dict):
        project = services.project_create(organisation=self.organisation, **values)
        return project, reverse("environment-new", args=[project.id])


def _project(page: TenantPage, pk) -> Project:
    project = page.restrict(Project.objects.all()).filter(pk=pk).first()
    if project is None:
        raise Http404("Project not found.")
    return project


class ProjectEditView(_ObjectForm):
    def initial(self) -> dict:
        project = _project(self, self.kwargs["pk"])
        return {"name": project.name, "slug": project.slug}

    def page(self) -> dict:
        project = _project(self, self.kwargs["pk"])
        return {
            "title": f"Edit {project.name}",
            "crumbs": [("Dashboard", reverse("dashboard")), (project.name, project_url(project))],
            "submit": "Save",
            "cancel_url": project_url(project),
            "delete_url": reverse("project-delete", args=[project.id]),
        }

    def save(self, values: dict):
        project = _project(self, self.kwargs["pk"])
        values.setdefault("slug", project.slug)
        project = services.project_update(project=project, **values)
        return project, project_url(project)


def _environment(page: TenantPage, pk) -> Environment:
    return page.environment(pk)


class EnvironmentCreateView(_ObjectForm):
    form_class = EnvironmentForm

    def page(self) -> dict:
        project = _project(self, self.kwargs["project_id"])
        return {
            "title": f"New environment of {project.name}",
            "crumbs": [("Dashboard", reverse("dashboard")), (project.name, project_url(project))],
            "submit": "Create environment",
            "cancel_url": project_url(project),
            "intro": "An environment is one deployment of the project (production, staging…) "
            "with its databases and, optionally, a files directory.",
        }

    def save(self, values: dict):
        project = _project(self, self.kwargs["project_id"])
        environment = services.environment_create(project=project, **values)
        return environment, reverse("database-new", args=[environment.id])


class EnvironmentEditView(_ObjectForm):
    form_class = EnvironmentForm

    def initial(self) -> dict:
        environment = _environment(self, self.kwargs["pk"])
        return {
            "name": environment.name,
            "slug": environment.slug,
            "files_path": environment.files_path,
        }

    def page(self) -> dict:
        environment = _environment(self, self.kwargs["pk"])
        project = environment.project
        return {
            "title": f"Edit {environment.name}",
            "crumbs": [
                ("Dashboard", reverse("dashboard")),
                (project.name, project_url(project)),
                (environment.name, environment_url(environment)),
            ],
            "submit": "Save",
            "cancel_url": environment_url(environment),
            "delete_url": reverse("environment-delete", args=[environment.id]),
        }

    def save(self, values: dict):
        environment = _environment(self, self.kwargs["pk"])
        values.setdefault("slug", environment.slug)
        environment = services.environment_update(environment=environment, **values)
        return environment, environment_url(environment)


class _DeleteView(TenantPage, TemplateView):
    """GET asks for confirmation; POST deletes through the service. A refusal (backups
    still stored, a backup running) is shown on the object's page."""

    template_name = "organizations/confirm_delete.html"
    required_role = Role.ADMIN
    what = ""

    def obj(self):
        raise NotImplementedError

    def consequences(self, obj) -> str:
        raise NotImplementedError

    def back_url(self, obj) -> str:
        raise NotImplementedError

    def after_url(self, obj) -> str:
        raise NotImplementedError

    def delete(self, obj) -> None:
        raise NotImplementedError

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        obj = self.obj()
        context.update(
            obj=obj,
            what=self.what,
            consequences=self.consequences(obj),
            back_url=self.back_url(obj),
        )
        return context

    def post(self, request, *args, **kwargs):
        obj = self.obj()
        try:
            self.delete(obj)
        except Conflict as exc:
            messages.error(request, exc.message)
            return redirect(self.back_url(obj))
        messages.success(request, f"Deleted the {self.what} “{obj.name}”.")
        return redirect(self.after_url(obj))


class ProjectDeleteView(_DeleteView):
    what = "project"

    def obj(self):
        return _project(self, self.kwargs["pk"])

    def consequences(self, obj) -> str:
        count = obj.environments.count()
        return (
            f"Its {count} environment(s) and their databases go with it. A project whose "
            "environments still have backups cannot be deleted: delete the backups first."
        )

    def back_url(self, obj) -> str:
        return project_url(obj)

    def after_url(self, obj) -> str:
        return reverse("dashboard")

    def delete(self, obj) -> None:
        services.project_delete(project=obj)


class EnvironmentDeleteView(_DeleteView):
    what = "environment"

    def obj(self):
        return _environment(self, self.kwargs["pk"])

    def consequences(self, obj) -> str:
        return (
            f"Its {obj.databases.count()} database(s) and its schedule go with it. An "
            "environment that still has backups cannot be deleted: delete the backups first."
        )

    def back_url(self, obj) -> str:
        return environment_url(obj)

    def after_url(self, obj) -> str:
        return project_url(obj.project)

    def delete(self, obj) -> None:
        services.environment_delete(environment=obj)


class DatabaseDeleteView(_DeleteView):
    what = "database"

    def obj(self):
        database = (
            self.restrict(Database.objects.select_related("environment__project"))
            .filter(pk=self.kwargs["pk"])
            .first()
        )
        if database is None:
            raise Http404("Database not found.")
        return database

    def consequences(self, obj) -> str:
        return (
            "Strongbox stops backing it up. Its finished backups stay, listed under the "
            "environment, and can still be restored elsewhere."
        )

    def back_url(self, obj) -> str:
        return reverse("database-detail", args=[obj.id])

    def after_url(self, obj) -> str:
        return environment_url(obj.environment)

    def delete(self, obj) -> None:
        services.database_delete(database=obj)


# --- members -------------------------------------------------------------------------------


class MembersView(TenantPage, TemplateView):
    """/settings/members/: who belongs to the organisation, with which role (admins)."""

    template_name = "organizations/members.html"
    required_role = Role.ADMIN

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", MemberAddForm())
        context["members"] = [
            (
                membership,
                MemberRoleForm(initial={"role": membership.role}, prefix=str(membership.pk)),
            )
            for membership in Membership.objects.filter(organisation=self.organisation)
            .select_related("user")
            .order_by("user__username")
        ]
        return context

    def post(self, request, *args, **kwargs):
        form = MemberAddForm(request.POST)
        if form.is_valid():
            try:
                membership = services.membership_add(
                    organisation=self.organisation,
                    user_reference=form.cleaned_data["user"],
                    role=form.cleaned_data["role"],
                )
            except InvalidInput as exc:
                form.apply_errors(exc)
            else:
                messages.success(
                    request,
                    f"{membership.user.get_username()} is now a member "
                    f"({membership.get_role_display().lower()}).",
                )
                return redirect("members")
        return self.render_to_response(self.get_context_data(form=form), status=400)


def _membership(page: TenantPage, pk) -> Membership:
    membership = page.restrict(Membership.objects.select_related("user")).filter(pk=pk).first()
    if membership is None:
        raise Http404("Member not found.")
    return membership


class MemberRoleView(TenantAction):
    required_role = Role.ADMIN

    def perform(self, request, **kwargs) -> str:
        membership = _membership(self, kwargs["pk"])
        form = MemberRoleForm(request.POST, prefix=str(membership.pk))
        if not form.is_valid():
            raise InvalidInput("Choose viewer, operator or admin.")
        services.membership_set_role(membership=membership, role=form.cleaned_data["role"])
        return f"{membership.user.get_username()} is now {membership.get_role_display().lower()}."

    def success_url(self, **kwargs) -> str:
        return reverse("members")


class MemberRemoveView(TenantAction):
    required_role = Role.ADMIN

    def perform(self, request, **kwargs) -> str:
        membership = _membership(self, kwargs["pk"])
        services.membership_remove(membership=membership)
        return f"{membership.user.get_username()} is no longer a member."

    def success_url(self, **kwargs) -> str:
        return reverse("members")
