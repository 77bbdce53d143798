from django.apps import AppConfig


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"

    def ready(self):
        # Here, not at the top: the receivers read the models, which load after the app
        # configs. Sign-ins are Django's own signals (the form, the admin, any backend).
        from audit import receivers  # noqa: F401, PLC0415
