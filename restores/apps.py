from django.apps import AppConfig


class RestoresConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "restores"
