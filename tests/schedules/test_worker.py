"""Schedules run by a real django-q2 worker (``manage.py qcluster``) on the ORM broker.

The worker is another process sharing the file-based SQLite test database, so these
tests use ``transactional_db`` (it only sees committed rows).

Speed: django-q2's sentinel calls its scheduler when a counter, advanced by
``guard_cycle`` seconds per guard-loop pass, reaches 30 (django_q/cluster.py,
``Sentinel.guard``): with the default 0.5 s cycle that is 30 s after start and every
30 s after. The worker here runs with ``guard_cycle`` 30, so the first pass calls the
scheduler at once (and every 30 s after); nothing else in the worker depends on it
within a test.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule as PeriodicTask
from django_q.models import Task

from backups.models import Backup, BackupStatus, BackupTrigger, CopyStatus
from schedules.models import Schedule
from schedules.timing import previous_run
from tests import factories
from tests.backups.helpers import database_for
from tests.fixtures.databases import fill_sqlite
from tests.fixtures.worker import wait_for

periodic = importlib.import_module("schedules.migrations.0002_periodic_tasks")
TICK = next(entry for entry in periodic.PERIODIC if entry[1].endswith(".run_due_schedules"))

WORKER_SETTINGS = """\
from config.settings.test import *  # noqa: F403
from config.settings.test import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "guard_cycle": 30, "workers": 1}
"""


@pytest.fixture
def worker_settings(tmp_path) -> dict[str, str]:
    if not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("the worker shares the file-based SQLite test database")
    package = tmp_path / "worker_settings"
    package.mkdir()
    (package / "schedules_worker.py").write_text(WORKER_SETTINGS)
    root = Path(__file__).resolve().parents[2]
    return {
        "DJANGO_SETTINGS_MODULE": "schedules_worker",
        "PYTHONPATH": os.pathsep.join([str(package), str(root)]),
    }


def tick_due_now() -> None:
    """The periodic task as the migration registers it, due now.

    A transactional test run earlier flushes the rows data migrations made; the other
    periodic tasks are removed so the worker only does what this test is about.
    """
    name, func, minutes = TICK
    PeriodicTask.objects.exclude(name=name).delete()
    PeriodicTask.objects.update_or_create(
        name=name,
        defaults={
            "func": func,
            "schedule_type": PeriodicTask.MINUTES,
            "minutes": minutes,
            "repeats": -1,
            "next_run": timezone.now() - timedelta(seconds=1),
        },
    )


def stop(worker) -> None:
    """SIGTERM to the cluster's main process, then the fixture's stop (SIGKILL if needed).

    The main process alone: its sentinel then stops the pusher, the workers and the
    monitor in order (about a second). A SIGTERM to the whole process group kills those
    children under the sentinel, which then waits for them forever.
    """
    process = worker.process
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
    worker.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_workers_scheduler_runs_a_due_slot_once_and_picks_up_a_change(
    environment, organisation_dir, sqlite_spec, start_worker, worker_settings
):
    fill_sqlite(sqlite_spec, rows=50)
    database_for(environment, sqlite_spec)
    destination = factories.DestinationFactory(
        organisation=environment.project.organisation,
        name="Scratch",
        config={"path": str(organisation_dir / "destination")},
    )
    now = timezone.now()
    slot = previous_run("0 2 * * *", "UTC", now)
    schedule = factories.ScheduleFactory(environment=environment, db_cron="0 2 * * *")
    schedule.destinations.set([destination])
    # It last ran three days ago, and the worker was down since: one backup, not three.
    Schedule.objects.filter(pk=schedule.pk).update(last_db_slot_at=slot - timedelta(days=3))
    tick_due_now()

    worker = start_worker(**worker_settings)
    try:
        (backup,) = wait_for(
            lambda: [
                b
                for b in Backup.objects.filter(schedule=schedule)
                if b.status in (BackupStatus.COMPLETED, BackupStatus.FAILED)
            ],
            timeout=45,
            message="the scheduled backup to finish",
        )
        assert backup.status == BackupStatus.COMPLETED, backup.message
        assert backup.trigger == BackupTrigger.SCHEDULED
        copy = backup.copies.get()
        assert copy.status == CopyStatus.STORED
        assert copy.destination == destination
        assert (organisation_dir / "destination" / copy.key).stat().st_size == backup.size
        schedule.refresh_from_db()
        assert schedule.last_db_slot_at == slot
        tick = Task.objects.filter(func=TICK[1]).latest("started")
        assert tick.success, tick.result
        assert tick.result.startswith("1 started")

        # Change the schedule while the worker runs: every minute, with an interval rule.
        schedule.db_cron = "* * * * *"
        schedule.save()
        factories.IntervalRuleFactory(
            schedule=schedule, interval="hourly", minute=list(range(60)), hour=None
        )
        Schedule.objects.filter(pk=schedule.pk).update(updated_at=now - timedelta(minutes=5))
        tick_due_now()  # rather than wait for the next minute; the scheduler checks every 30 s

        second = wait_for(
            lambda: (
                Backup.objects.filter(schedule=schedule)
                .exclude(pk=backup.pk)
                .filter(status=BackupStatus.COMPLETED)
                .first()
            ),
            timeout=45,
            message="the changed schedule's backup",
        )
        assert second.schedule_rules == [{"interval": "hourly", "minute": list(range(60))}]
    except AssertionError:
        print(worker.output())  # noqa: T201 - shown with the failure
        raise
    finally:
        stop(worker)


@pytest.mark.django_db
def test_the_migration_registers_each_periodic_task_once():
    from django.apps import apps

    periodic.register(apps, None)
    periodic.register(apps, None)

    for name, func, minutes in periodic.PERIODIC:
        task = PeriodicTask.objects.get(name=name)
        assert (task.func, task.schedule_type, task.minutes, task.repeats) == (
            func,
            PeriodicTask.MINUTES,
            minutes,
            -1,
        )
    assert {name for name, _, _ in periodic.PERIODIC} >= {
        "strongbox: run due schedules",
        "strongbox: enforce retention",
    }
