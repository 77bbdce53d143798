"""Register the schedules app's periodic tasks with django-q2's scheduler."""

from django.db import migrations

# (name, function, every N minutes). update_or_create by name, so re-running is harmless.
PERIODIC = [
    ("strongbox: run due schedules", "schedules.tasks.run_due_schedules", 1),
    ("strongbox: check missed schedule runs", "schedules.tasks.check_missed_runs", 5),
    ("strongbox: enforce retention", "schedules.tasks.enforce_retention", 60),
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
        ("schedules", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(register, unregister)]
