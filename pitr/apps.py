from django.apps import AppConfig


class PitrConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pitr"
    verbose_name = "point-in-time recovery"
