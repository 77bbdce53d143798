from django.apps import AppConfig


class OrganizationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "organizations"

    def ready(self):
        from django.core import checks

        from organizations.checks import check_tenant_paths, check_tenant_root
        from organizations.hostpolicy import check_default_setting

        checks.register(check_default_setting)
        checks.register(check_tenant_root)
        checks.register(check_tenant_paths, checks.Tags.database)
