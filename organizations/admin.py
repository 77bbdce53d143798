from django import forms
from django.contrib import admin, messages

from organizations import services
from organizations.models import ApiToken, Database, Environment, Membership, Organisation, Project


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organisation", "role", "created_at"]
    list_filter = ["role", "organisation"]
    search_fields = ["user__username", "user__email", "organisation__name"]
    autocomplete_fields = ["user", "organisation"]


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


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "organisation", "created_at"]
    list_filter = ["organisation"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "project", "files_path", "created_at"]
    list_filter = ["project__organisation", "project"]
    search_fields = ["name", "slug", "project__name"]
    prepopulated_fields = {"slug": ["name"]}


class DatabaseAdminForm(forms.ModelForm):
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
        ]

    def clean_password(self):
        value = self.cleaned_data.get("password")
        if not value and self.instance.pk:
            return Database.objects.get(pk=self.instance.pk).password
        return value


@admin.register(Database)
class DatabaseAdmin(admin.ModelAdmin):
    form = DatabaseAdminForm
    list_display = ["name", "engine", "version", "environment", "host", "database_name"]
    list_filter = ["engine", "environment__project__organisation"]
    search_fields = ["name", "slug", "host", "database_name", "environment__name"]
    prepopulated_fields = {"slug": ["name"]}
