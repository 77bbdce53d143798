from django.apps import AppConfig
from django.core import checks


class DestinationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "destinations"

    def ready(self) -> None:
        # Here, not at the top: it reads the models, which load after the app configs.
        from destinations.checks import check_destination_paths  # noqa: PLC0415

        checks.register(check_destination_paths, checks.Tags.database)
