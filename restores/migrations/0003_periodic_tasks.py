"""Register the restores app's periodic work with django-q2's scheduler."""

from django.db import migrations

PERIODIC = [
    ("strongbox: reap stale restores", "restores.tasks.reap_stale_restores", 1),
    ("strongbox: test-restore the latest backups", "restores.tasks.test_restore_latest_backups", 60),
]


def register(apps, schema_editor):
    schedule_model = apps.get_model("django_q", "Schedule")
    for name, func, minutes in PERIODIC:
        schedule_model.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1},
        )


def unregister(apps, schema_editor):
    schedule_model = apps.get_model("django_q", "Schedule")
    schedule_model.objects.filter(name__in=[name for name, _, _ in PERIODIC]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("restores", "0002_restore_undoes"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(register, unregister)]
