from django.apps import AppConfig


class OrganizationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "organizations"

    def ready(self):
        from django.core import checks

        from organizations.hostpolicy import check_default_setting

        checks.register(check_default_setting)
