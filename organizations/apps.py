from django.apps import AppConfig
from django.core import checks


class OrganizationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "organizations"

    def ready(self):
        # Here, not at the top: it reads the models, which load after the app configs.
        from organizations.hostpolicy import check_default_setting  # noqa: PLC0415

        checks.register(check_default_setting)
