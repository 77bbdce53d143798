from django.apps import AppConfig


class PitrConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pitr"
    verbose_name = "point-in-time recovery"

    def ready(self) -> None:
        # Here, not at the top: these read the models, which load after the app configs.
        from backups.execution import register_source_plan  # noqa: PLC0415
        from backups.models import BackupKind  # noqa: PLC0415
        from backups.services import register_backup_request  # noqa: PLC0415
        from pitr.base import BaseBackupPlan, base_backups_request  # noqa: PLC0415

        register_source_plan(BackupKind.BASE, BaseBackupPlan.for_backup)
        register_backup_request(BackupKind.BASE, base_backups_request)
