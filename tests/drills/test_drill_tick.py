"""The drills tick over many databases in two organisations: each due policy is on its own
(one that cannot be drilled, or whose drill fails, stops none of the others), and the
``drill_failed`` / ``rto_exceeded`` alerts count recurrences on one open alert per database
and are resolved by the next good drill."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertKind
from drills import services, tasks
from drills.models import Drill, DrillPolicy, DrillStatus
from drills.services import drill_request, drills_tick
from tests import factories
from tests.backups.helpers import database_for, run_backup_now
from tests.drills.helpers import run_drill_now
from tests.fixtures.databases import fill_sqlite
from tests.fixtures.queue import queued_tasks


def _now():
    return timezone.now().replace(second=30, microsecond=0)


def _due_policy(database, **fields) -> DrillPolicy:
    policy = DrillPolicy.objects.create(database=database, enabled=True, cron="* * * * *", **fields)
    DrillPolicy.objects.filter(pk=policy.pk).update(updated_at=_now() - timedelta(minutes=5))
    return policy


def _database(environment, make_sqlite_database, slug, *, rows=10, backed_up=True):
    spec = make_sqlite_database(environment.project.organisation)
    fill_sqlite(spec, rows=rows)
    database = database_for(environment, spec, slug=slug, name=slug.title())
    if backed_up:
        backup = run_backup_now(environment=environment, kind="database", database=database)
        assert backup.status == "completed", backup.message
    return database


@pytest.fixture
def other_environment(other_organisation):
    factories.DestinationFactory(organisation=other_organisation)
    return factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation)
    )


@pytest.mark.django_db
def test_one_tick_drills_every_due_database_of_both_organisations_whatever_fails(
    organisation,
    other_organisation,
    environment,
    other_environment,
    destination,
    make_sqlite_database,
    django_capture_on_commit_callbacks,
):
    ours = {
        slug: _database(environment, make_sqlite_database, slug, backed_up=slug != "empty")
        for slug in ("main", "broken", "empty", "busy", "badcron")
    }
    theirs = {
        slug: _database(other_environment, make_sqlite_database, slug) for slug in ("shop", "crm")
    }
    policies = {d.slug: _due_policy(d) for d in (*ours.values(), *theirs.values())}
    # Its newest backup recorded other counts: its drill fails when it runs.
    broken_backup = ours["broken"].backups.get()
    broken_backup.row_counts = {**broken_backup.row_counts, "customers": 3}
    broken_backup.save()
    busy = drill_request(database=ours["busy"], enqueue=False)
    DrillPolicy.objects.filter(database=ours["badcron"]).update(cron="not a cron")

    with django_capture_on_commit_callbacks(execute=True):
        result = drills_tick(now=_now())

    started = {drill.database.slug for drill in result.started}
    assert started == {"main", "broken", "shop", "crm"}
    assert len(result.refused) == 3
    assert any("no completed backup" in refusal for refusal in result.refused)
    assert any("already scheduled or running" in refusal for refusal in result.refused)
    assert any(str(policies["badcron"].pk) in refusal for refusal in result.refused)
    queued = [t["args"] for t in queued_tasks() if t["func"] == "drills.tasks.run_drill"]
    assert sorted(queued) == sorted((str(d.id),) for d in result.started)

    outcomes = {
        Drill.objects.get(pk=args[0]).database.slug: tasks.run_drill(*args) for args in queued
    }

    assert outcomes == {
        "main": DrillStatus.PASSED,
        "broken": DrillStatus.FAILED,
        "shop": DrillStatus.PASSED,
        "crm": DrillStatus.PASSED,
    }
    (alert,) = Alert.objects.filter(kind=AlertKind.DRILL_FAILED)
    assert alert.organisation == organisation and "Broken" in alert.title
    assert not Alert.objects.filter(organisation=other_organisation).exists()
    assert Drill.objects.get(pk=busy.pk).status == DrillStatus.SCHEDULED  # untouched
    assert DrillPolicy.objects.filter(last_slot_at__isnull=False).count() == 6


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_refuses_during_the_tick_stops_no_policy(
    environment, destination, make_sqlite_database, monkeypatch
):
    """Each policy's claim commits on its own, and its enqueue runs then: a broker that
    refuses must not end the tick before the other policies (they are enqueued again)."""
    databases = [_database(environment, make_sqlite_database, s) for s in ("one", "two", "three")]
    for database in databases:
        _due_policy(database)

    def broker_down(*args, **kwargs):
        raise ConnectionError("the broker is down")

    monkeypatch.setattr(services, "async_task", broker_down)
    result = drills_tick(now=_now())

    assert sorted(d.database.slug for d in result.started) == ["one", "three", "two"]
    assert Drill.objects.filter(status=DrillStatus.SCHEDULED, task_id="").count() == 3


@pytest.mark.django_db
def test_drill_failed_counts_recurrences_on_one_alert_until_a_good_drill_resolves_it(
    organisation, environment, destination, make_sqlite_database
):
    database = _database(environment, make_sqlite_database, "main")
    other = _database(environment, make_sqlite_database, "reports")
    backup = database.backups.get()
    good = dict(backup.row_counts)
    backup.row_counts = {**good, "customers": 1}
    backup.save()

    assert run_drill_now(database=database).status == DrillStatus.FAILED
    assert run_drill_now(database=database).status == DrillStatus.FAILED
    assert run_drill_now(database=other).status == DrillStatus.PASSED  # resolves only its own

    (alert,) = Alert.objects.filter(kind=AlertKind.DRILL_FAILED)
    assert alert.occurrences == 2 and alert.resolved_at is None
    backup.row_counts = good
    backup.save()
    assert run_drill_now(database=database).status == DrillStatus.PASSED
    alert.refresh_from_db()
    assert alert.resolved_at is not None

    # A failure after the good drill opens a new alert (the resolved one stays resolved).
    backup.row_counts = {**good, "customers": 1}
    backup.save()
    assert run_drill_now(database=database).status == DrillStatus.FAILED
    assert Alert.objects.filter(kind=AlertKind.DRILL_FAILED, resolved_at=None).count() == 1
    assert Alert.objects.filter(kind=AlertKind.DRILL_FAILED).count() == 2


@pytest.mark.django_db
def test_rto_exceeded_counts_recurrences_survives_a_failed_drill_and_resolves_on_time(
    environment, destination, make_sqlite_database
):
    database = _database(environment, make_sqlite_database, "main")
    # An objective of 0 s no drill meets (set here; the API asks for at least 1 s).
    policy = DrillPolicy.objects.create(database=database, rto_objective_seconds=0)
    backup = database.backups.get()
    good = dict(backup.row_counts)

    assert run_drill_now(database=database).status == DrillStatus.PASSED
    assert run_drill_now(database=database).status == DrillStatus.PASSED
    (slow,) = Alert.objects.filter(kind=AlertKind.RTO_EXCEEDED)
    assert slow.occurrences == 2 and slow.resolved_at is None

    # A failed drill measured no recovery: the recovery-time alert stays as it was.
    backup.row_counts = {**good, "customers": 1}
    backup.save()
    assert run_drill_now(database=database).status == DrillStatus.FAILED
    slow.refresh_from_db()
    assert slow.resolved_at is None and slow.occurrences == 2

    backup.row_counts = good
    backup.save()
    policy.rto_objective_seconds = 3600
    policy.save()
    assert run_drill_now(database=database).status == DrillStatus.PASSED
    slow.refresh_from_db()
    assert slow.resolved_at is not None
    assert not Alert.objects.filter(resolved_at=None).exists()
