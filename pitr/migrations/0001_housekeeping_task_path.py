"""The PITR housekeeping moved from ``backups.pitr`` to the ``pitr`` app: django-q2's
scheduler stores the task's dotted path, so the row registered by
``backups/migrations/0003_pitr.py`` is pointed at the new one."""

from django.db import migrations

OLD = "backups.pitr.run_pitr_housekeeping"
NEW = "pitr.tasks.run_pitr_housekeeping"


def forward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=OLD).update(func=NEW)


def backward(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=NEW).update(func=OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0003_pitr"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forward, backward)]
