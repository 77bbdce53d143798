from django.apps import AppConfig


class FrontConfig(AppConfig):
    """The pages composed of several apps (dashboard, environment page); no models."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "front"
