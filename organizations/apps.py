from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.core import checks


class StrongboxAdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin`` with Strongbox's site (two-factor for users with a device)."""

    default = False  # the "organizations" entry is OrganizationsConfig
    default_site = "organizations.admin_site.StrongboxAdminSite"


class OrganizationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "organizations"

    def ready(self):
        # Here, not at the top: they read the models, which load after the app configs.
        from organizations.checks import check_tenant_paths, check_tenant_root  # noqa: PLC0415
        from organizations.hostpolicy import check_default_setting  # noqa: PLC0415
        from organizations.sso import check_sso_settings  # noqa: PLC0415

        checks.register(check_default_setting)
        checks.register(check_tenant_root)
        checks.register(check_sso_settings)
        checks.register(check_tenant_paths, checks.Tags.database)
