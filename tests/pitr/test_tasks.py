"""The PITR housekeeping as django-q2 runs it: by the dotted path its Schedule row stores."""

import importlib
import pydoc

import pytest
from django.apps import apps
from django_q.models import Schedule as PeriodicTask

from pitr.tasks import run_pitr_housekeeping

HOUSEKEEPING = "strongbox: PITR alerts and WAL retention"
path_migration = importlib.import_module("pitr.migrations.0001_housekeeping_task_path")

pytestmark = pytest.mark.django_db


def test_the_housekeeping_schedule_names_the_pitr_task():
    task = PeriodicTask.objects.get(name=HOUSEKEEPING)

    assert task.func == "pitr.tasks.run_pitr_housekeeping"
    # django-q2's worker finds the function with pydoc.locate: None would fail every run.
    assert pydoc.locate(task.func) is run_pitr_housekeeping


def test_every_periodic_task_the_migrations_register_resolves():
    funcs = PeriodicTask.objects.values_list("func", flat=True)

    assert [func for func in funcs if pydoc.locate(func) is None] == []


def test_a_schedule_stored_under_the_old_path_is_moved_to_the_new_one_and_back():
    task = PeriodicTask.objects.get(name=HOUSEKEEPING)
    PeriodicTask.objects.filter(pk=task.pk).update(func=path_migration.OLD)

    path_migration.forward(apps, None)
    task.refresh_from_db()
    assert task.func == path_migration.NEW

    path_migration.backward(apps, None)
    task.refresh_from_db()
    assert task.func == "backups.pitr.run_pitr_housekeeping"
