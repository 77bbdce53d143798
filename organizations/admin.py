from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect

from config.errors import ApplicationError, InvalidInput
from organizations import services, two_factor
from organizations.hostpolicy import entry_problem
from organizations.models import (
    ApiToken,
    Database,
    Environment,
    HostPolicy,
    Membership,
    Organisation,
    PathGrant,
    Project,
    SsoIdentity,
)
from organizations.validators import grant_problem, organisation_root, slug_problem


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class OrganisationAdminForm(forms.ModelForm):
    class Meta:
        model = Organisation
        fields = ["name", "slug", "require_two_factor"]

    def clean_slug(self):
        # The slug names the organisation's directory under the tenant root: one that
        # already holds files (another or a deleted organisation's) must not become its own.
        slug = self.cleaned_data["slug"]
        if problem := slug_problem(self.instance, slug):
            raise forms.ValidationError(problem)
        return slug


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    form = OrganisationAdminForm
    list_display = ["name", "slug", "require_two_factor", "tenant_directory", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "require_two_factor" in form.changed_data:
            two_factor.requirement_changed_log(organisation=obj, actor=request.user)

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)
            return
        # Through the services, so every role change is in the audit log.
        for membership in formset.save(commit=False):
            services.membership_save(membership=membership)
        for membership in formset.deleted_objects:
            services.membership_delete(membership=membership)

    @admin.display(description="Directory")
    def tenant_directory(self, obj) -> str:
        return str(organisation_root(obj) or "")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    # "Single sign-on" memberships follow the user's groups at each sign-in; set one to
    # "Added by hand" to keep it whatever the groups say.
    list_display = ["user", "organisation", "role", "source", "created_at"]
    list_filter = ["role", "source", "organisation"]
    search_fields = ["user__username", "user__email", "organisation__name"]
    autocomplete_fields = ["user", "organisation"]

    def save_model(self, request, obj, form, change):
        services.membership_save(membership=obj)

    def delete_model(self, request, obj):
        services.membership_delete(membership=obj)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("user"):
            services.membership_delete(membership=membership)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "organisation", "role", "token_prefix", "last_used_at", "revoked_at"]
    list_filter = ["role", "organisation", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "token_prefix", "organisation__name"]
    readonly_fields = ["token_prefix", "created_at", "last_used_at", "revoked_at", "created_by"]
    fields = ["organisation", "name", "role", *readonly_fields]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token, raw = services.api_token_create(
            organisation=obj.organisation, name=obj.name, role=obj.role, created_by=request.user
        )
        obj.pk = token.pk
        # Shown once: only the hash is stored.
        messages.warning(request, f"Copy the new token now, it will not be shown again: {raw}")

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            services.api_token_revoke(token=token)


class _ServiceAdmin(admin.ModelAdmin):
    """Saves and deletes through ``organizations.services``, so the admin keeps the API's
    rules: a refused delete (backups still stored) is an error message, not a cascade
    that would orphan their artifacts. No bulk delete, for the same reason."""

    # Fixed once created: moving an environment to another organisation's project would
    # leave its backups, restores and WAL recorded under the organisation they came from.
    parent_field = ""

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and self.parent_field:
            fields.append(self.parent_field)
        return fields

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            opts = self.opts
            return redirect(f"admin:{opts.app_label}_{opts.model_name}_change", object_id)

    def save_model(self, request, obj, form, change):
        saved = self.service_update(obj) if change else self.service_create(obj)
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        self.service_delete(obj)


class _ServiceForm(forms.ModelForm):
    """Runs the services' checks on the cleaned values, as errors on their fields."""

    parent_field = ""

    def _get_validation_exclusions(self):
        # The parent is read-only once created, so not a form field; the slug's uniqueness
        # within it must still be checked here (an error on the page, not a 500 at save).
        exclude = super()._get_validation_exclusions()
        exclude.discard(self.parent_field)
        return exclude

    def clean(self):
        cleaned = super().clean()
        try:
            self.check(cleaned)
        except InvalidInput as exc:
            for field, problems in exc.fields.items():
                self.add_error(field if field in self.fields else None, problems)
        return cleaned

    def check(self, cleaned: dict) -> None:
        pass


class ProjectAdminForm(_ServiceForm):
    parent_field = "organisation"

    class Meta:
        model = Project
        fields = ["organisation", "name", "slug"]


@admin.register(Project)
class ProjectAdmin(_ServiceAdmin):
    form = ProjectAdminForm
    parent_field = "organisation"
    list_display = ["name", "slug", "organisation", "created_at"]
    list_filter = ["organisation"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def service_create(self, obj):
        return services.project_create(organisation=obj.organisation, name=obj.name, slug=obj.slug)

    def service_update(self, obj):
        return services.project_update(project=obj, name=obj.name, slug=obj.slug)

    def service_delete(self, obj):
        services.project_delete(project=obj)


class EnvironmentAdminForm(_ServiceForm):
    parent_field = "project"

    class Meta:
        model = Environment
        fields = ["project", "name", "slug", "files_path"]

    def check(self, cleaned: dict) -> None:
        project = cleaned.get("project") or getattr(self.instance, "project", None)
        if project is not None:
            services.check_server_path(
                project.organisation, "files_path", cleaned.get("files_path") or ""
            )


@admin.register(Environment)
class EnvironmentAdmin(_ServiceAdmin):
    parent_field = "project"
    form = EnvironmentAdminForm
    list_display = ["name", "slug", "project", "files_path", "created_at"]
    list_filter = ["project__organisation", "project"]
    search_fields = ["name", "slug", "project__name"]
    prepopulated_fields = {"slug": ["name"]}

    def service_create(self, obj):
        return services.environment_create(
            project=obj.project, name=obj.name, slug=obj.slug, files_path=obj.files_path
        )

    def service_update(self, obj):
        return services.environment_update(
            environment=obj, name=obj.name, slug=obj.slug, files_path=obj.files_path
        )

    def service_delete(self, obj):
        services.environment_delete(environment=obj)


# Anomaly alerts (backups/anomaly.py): empty thresholds take the installation's defaults.
ANOMALY_FIELDS = (
    "anomaly_checks",
    "anomaly_drop_percent",
    "anomaly_jump_percent",
    "anomaly_min_rows",
    "anomaly_compression_drop_percent",
)


class DatabaseAdminForm(_ServiceForm):
    parent_field = "environment"

    # Write-only: the stored password is never rendered back into the page.
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to keep the current password.",
    )

    class Meta:
        model = Database
        fields = [
            "environment",
            "name",
            "slug",
            "engine",
            "version",
            "host",
            "port",
            "username",
            "password",
            "database_name",
            "options",
            *ANOMALY_FIELDS,
        ]

    def clean_password(self):
        value = self.cleaned_data.get("password")
        # A new row has its UUID pk already: only a saved one has a password to keep.
        if not value and not self.instance._state.adding:
            return Database.objects.get(pk=self.instance.pk).password
        return value

    def check(self, cleaned: dict) -> None:
        environment = cleaned.get("environment") or getattr(self.instance, "environment", None)
        if cleaned.get("engine") and cleaned.get("database_name") and environment is not None:
            services.check_database_path(
                environment.organisation,
                cleaned["engine"],
                cleaned["database_name"],
                cleaned.get("options") or {},
            )
        if cleaned.get("engine") and environment is not None:
            services.check_database_host(
                environment.organisation,
                cleaned["engine"],
                cleaned.get("host") or "",
                cleaned.get("port"),
            )


@admin.register(Database)
class DatabaseAdmin(_ServiceAdmin):
    parent_field = "environment"
    form = DatabaseAdminForm
    list_display = ["name", "engine", "version", "environment", "host", "database_name"]
    list_filter = ["engine", "environment__project__organisation"]
    search_fields = ["name", "slug", "host", "database_name", "environment__name"]
    prepopulated_fields = {"slug": ["name"]}

    # What the form edits, passed to the services as it stands on the object.
    EDITED = (
        "name",
        "slug",
        "engine",
        "host",
        "port",
        "username",
        "password",
        "database_name",
        "options",
        *ANOMALY_FIELDS,
    )

    def edited(self, obj) -> dict:
        return {field: getattr(obj, field) for field in self.EDITED}

    def service_create(self, obj):
        return services.database_create(
            environment=obj.environment, version=obj.version, **self.edited(obj)
        )

    def service_update(self, obj):
        # ``version`` is what the server last reported, not a rule: saved with the rest.
        return services.database_update(database=obj, **self.edited(obj))

    def service_delete(self, obj):
        services.database_delete(database=obj)


class HostPolicyAdminForm(forms.ModelForm):
    """The entries one per line; checked by the same service the command uses."""

    allowed_hosts = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="One per line: a network (10.0.0.0/8), a host name (db.example.com), a "
        "wildcard (*.example.com) or * for any host. Empty: the server default "
        "(STRONGBOX_DEFAULT_ALLOWED_HOSTS).",
    )

    class Meta:
        model = HostPolicy
        fields = ["organisation", "allowed_hosts"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["allowed_hosts"] = "\n".join(self.instance.allowed_hosts)

    def clean_allowed_hosts(self):
        entries = [line.strip() for line in self.cleaned_data["allowed_hosts"].splitlines()]
        entries = [entry for entry in entries if entry]
        problems = [problem for entry in entries if (problem := entry_problem(entry))]
        if problems:
            raise forms.ValidationError(problems)
        return entries


class _SuperuserOnlyAdmin(admin.ModelAdmin):
    """Only superusers see or change these: they bound what tenants may reach."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return self.has_module_permission(request)


@admin.register(HostPolicy)
class HostPolicyAdmin(_SuperuserOnlyAdmin):
    """Host policies bound what tenants may reach."""

    form = HostPolicyAdminForm
    list_display = ["organisation", "allowed_hosts", "updated_at"]
    search_fields = ["organisation__name", "organisation__slug"]
    autocomplete_fields = ["organisation"]

    def save_model(self, request, obj, form, change):
        saved = services.host_policy_set(
            organisation=obj.organisation, allowed_hosts=form.cleaned_data["allowed_hosts"]
        )
        obj.pk = saved.pk


class PathGrantForm(forms.ModelForm):
    class Meta:
        model = PathGrant
        fields = ["organisation", "path", "note"]

    def clean(self):
        cleaned = super().clean()
        organisation, path = cleaned.get("organisation"), cleaned.get("path")
        if organisation and path:
            exclude = self.instance if self.instance.pk else None
            if problem := grant_problem(organisation, path, exclude=exclude):
                self.add_error("path", problem)
        return cleaned


@admin.register(PathGrant)
class PathGrantAdmin(_SuperuserOnlyAdmin):
    """Server directories granted to one organisation besides its own root; the form
    refuses overlaps with other organisations and the app's data."""

    form = PathGrantForm

    list_display = ["path", "organisation", "note", "created_by", "created_at"]
    list_filter = ["organisation"]
    search_fields = ["path", "note", "organisation__name", "organisation__slug"]
    autocomplete_fields = ["organisation"]
    fields = ["organisation", "path", "note"]

    def save_model(self, request, obj, form, change):
        if change:  # the form's clean() checked the new path against the same rules
            super().save_model(request, obj, form, change)
            return
        grant = services.path_grant_create(
            organisation=obj.organisation, path=obj.path, note=obj.note, created_by=request.user
        )
        obj.pk = grant.pk

    def delete_model(self, request, obj):
        services.path_grant_revoke(organisation=obj.organisation, path=obj.path)

    def delete_queryset(self, request, queryset):
        for grant in queryset.select_related("organisation"):
            services.path_grant_revoke(organisation=grant.organisation, path=grant.path)


@admin.register(SsoIdentity)
class SsoIdentityAdmin(_SuperuserOnlyAdmin):
    """Which provider account signs in as which user; deleting one makes the next sign-in
    of that account a new user."""

    list_display = ["user", "subject", "issuer", "created_at", "last_sign_in_at"]
    search_fields = ["user__username", "user__email", "subject"]
    readonly_fields = ["user", "issuer", "subject", "created_at", "last_sign_in_at"]

    def has_add_permission(self, request):
        return False
