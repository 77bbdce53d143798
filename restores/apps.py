from django.apps import AppConfig


class RestoresConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "restores"

    def ready(self) -> None:
        # Here, not at the top: both read models, which load after the app configs.
        from django_q.signals import post_spawn  # noqa: PLC0415

        from restores.tasks import clean_up_at_worker_start  # noqa: PLC0415

        post_spawn.connect(clean_up_at_worker_start, dispatch_uid="strongbox-worker-clean-up")
