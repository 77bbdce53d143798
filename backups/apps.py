from django.apps import AppConfig
from django.core import checks


class BackupsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "backups"

    def ready(self):
        # Here, not at the top: backups.keys reads the models, which load after the configs.
        from django_q.signals import post_spawn  # noqa: PLC0415

        from backups.checks import check_age_settings  # noqa: PLC0415
        from backups.memory import fix_malloc_at_worker_start  # noqa: PLC0415

        checks.register(check_age_settings)
        post_spawn.connect(fix_malloc_at_worker_start, dispatch_uid="strongbox-worker-malloc")
