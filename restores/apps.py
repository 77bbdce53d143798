from django.apps import AppConfig


class RestoresConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "restores"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from restores.tasks import clean_up_at_worker_start

        post_spawn.connect(clean_up_at_worker_start, dispatch_uid="strongbox-worker-clean-up")
