"""Lost drill tasks: a ``scheduled`` drill whose task never reached a worker (a broker
restarted without persistence, or down when the request committed) is enqueued again once
per interval, on the broker this run uses (ORM or Redis); a started one never is."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.brokers import get_broker

from backups.services import REQUEUE_AFTER
from drills import services, tasks
from drills.models import Drill, DrillStatus
from drills.services import drill_claim, drill_request, drills_requeue_lost, drills_tick
from tests.backups.helpers import database_for, run_backup_now
from tests.fixtures.databases import fill_sqlite
from tests.fixtures.queue import queued_tasks

pytestmark = pytest.mark.django_db


def _drill_tasks() -> list[tuple]:
    return [t["args"] for t in queued_tasks() if t["func"] == "drills.tasks.run_drill"]


def _backed_up(environment, sqlite_spec):
    fill_sqlite(sqlite_spec, rows=10)
    database = database_for(environment, sqlite_spec)
    run_backup_now(environment=environment, kind="database", database=database)
    return database


def _lost_drill(database, django_capture_on_commit_callbacks) -> Drill:
    with django_capture_on_commit_callbacks(execute=True):
        drill = drill_request(database=database)
    assert _drill_tasks() == [(str(drill.id),)]
    get_broker().purge_queue()  # the broker restarted and kept nothing
    assert _drill_tasks() == []
    return drill


def test_a_drill_whose_task_was_lost_is_enqueued_again_once_per_interval_and_runs(
    environment, destination, sqlite_spec, django_capture_on_commit_callbacks
):
    database = _backed_up(environment, sqlite_spec)
    lost = _lost_drill(database, django_capture_on_commit_callbacks)

    assert drills_requeue_lost() == []  # just enqueued: not lost yet
    later = timezone.now() + REQUEUE_AFTER + timedelta(seconds=1)
    assert [d.pk for d in drills_requeue_lost(now=later)] == [lost.pk]
    assert drills_requeue_lost(now=later) == []  # not again within the interval
    assert _drill_tasks() == [(str(lost.id),)]
    again = later + REQUEUE_AFTER + timedelta(seconds=1)
    assert [d.pk for d in drills_requeue_lost(now=again)] == [lost.pk]
    assert _drill_tasks() == [(str(lost.id),)] * 2

    # Two deliveries of one drill: it runs once.
    assert tasks.run_drill(str(lost.id)) == DrillStatus.PASSED
    assert tasks.run_drill(str(lost.id)) == "skipped"
    # And the database is free for the next one.
    assert drill_request(database=database, enqueue=False).status == DrillStatus.SCHEDULED


def test_the_tick_enqueues_a_lost_drill_again(
    environment, destination, sqlite_spec, django_capture_on_commit_callbacks
):
    database = _backed_up(environment, sqlite_spec)
    lost = _lost_drill(database, django_capture_on_commit_callbacks)

    result = drills_tick(now=timezone.now() + REQUEUE_AFTER + timedelta(seconds=1))

    assert [d.pk for d in result.requeued] == [lost.pk]
    assert _drill_tasks() == [(str(lost.id),)]


def test_a_started_drill_is_never_enqueued_again(environment, destination, sqlite_spec):
    database = _backed_up(environment, sqlite_spec)
    drill = drill_request(database=database, enqueue=False)
    drill_claim(drill_id=drill.id)

    assert drills_requeue_lost(now=timezone.now() + 2 * REQUEUE_AFTER) == []
    assert _drill_tasks() == []


def test_a_drill_requested_while_the_broker_refuses_is_recorded_and_tried_again(
    environment, destination, sqlite_spec, monkeypatch, django_capture_on_commit_callbacks
):
    database = _backed_up(environment, sqlite_spec)

    def broker_down(*args, **kwargs):
        raise ConnectionError("the broker is down")

    monkeypatch.setattr(services, "async_task", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        drill = drill_request(database=database)
    assert Drill.objects.get(pk=drill.pk).status == DrillStatus.SCHEDULED
    later = timezone.now() + REQUEUE_AFTER + timedelta(seconds=1)
    # Still down at the next sweep: nothing raised, tried again an interval later.
    assert drills_requeue_lost(now=later) == []

    monkeypatch.undo()
    again = later + REQUEUE_AFTER + timedelta(seconds=1)
    assert [d.pk for d in drills_requeue_lost(now=again)] == [drill.pk]
    assert _drill_tasks() == [(str(drill.id),)]
