"""Restore drills against the real servers: a backup restored into a throwaway database,
counted, timed and dropped; the source and the other databases never touched."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertKind
from backups.engines import ConnectionSpec, get_engine
from config.errors import Conflict
from drills import tasks
from drills.models import Drill, DrillPolicy, DrillStatus, DrillTrigger
from drills.services import drill_request, drills_tick
from tests import factories
from tests.backups.helpers import database_for, make_files_tree, run_backup_now
from tests.drills.helpers import database_exists, run_drill_now
from tests.fixtures.databases import (
    fill_mariadb,
    fill_postgres,
    fill_sqlite,
    postgres_server,
    table_checksums,
)
from tests.fixtures.queue import queued_tasks
from tests.restores.helpers import artifact_path, flip_a_byte, leftovers

pytestmark = pytest.mark.django_db

FILLS = {"postgresql": fill_postgres, "mariadb": fill_mariadb, "sqlite": fill_sqlite}
MAKERS = {
    "postgresql": "make_postgres_database",
    "mariadb": "make_mariadb_database",
    "sqlite": "make_sqlite_database",
}


def _backed_up(request, environment, engine, rows=60, **extra):
    spec = request.getfixturevalue(MAKERS[engine])()
    counts = FILLS[engine](spec, rows=rows)
    database = database_for(environment, spec, **extra)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    assert backup.status == "completed", backup.message
    return spec, database, backup, counts


@pytest.mark.parametrize("engine", ["postgresql", "mariadb", "sqlite"])
def test_a_drill_restores_the_newest_backup_into_a_throwaway_database_and_drops_it(
    engine, environment, destination, request
):
    spec, database, backup, counts = _backed_up(request, environment, engine)
    before = table_checksums(spec)

    drill = run_drill_now(database=database)

    assert drill.status == DrillStatus.PASSED, drill.message
    assert drill.backup == backup
    assert drill.expected_rows == drill.restored_rows == sum(counts.values())
    assert drill.rto_seconds is not None and drill.rto_seconds > 0
    assert drill.started_at <= drill.finished_at
    assert "3 table(s)" in drill.message and "every count matches" in drill.message
    # A new database of the prefix and the drill's short id, gone afterwards.
    assert drill.throwaway_name.rsplit("/", 1)[-1].startswith(f"strongbox_drill_{drill.short_id}")
    assert drill.throwaway_name != spec.name
    assert not database_exists(spec, drill.throwaway_name)
    assert table_checksums(spec) == before
    assert leftovers(spec) == []


def test_a_drill_never_touches_the_other_databases_of_the_environment(
    environment, destination, make_postgres_database
):
    source, other = make_postgres_database(), make_postgres_database()
    fill_postgres(source, rows=40)
    fill_postgres(other, rows=10)
    database = database_for(environment, source, slug="main")
    database_for(environment, other, slug="reports")
    run_backup_now(environment=environment, kind="database", database=database)
    before = {name: table_checksums(spec) for name, spec in (("s", source), ("o", other))}

    drill = run_drill_now(database=database)

    assert drill.status == DrillStatus.PASSED, drill.message
    after = {name: table_checksums(spec) for name, spec in (("s", source), ("o", other))}
    assert after == before


def test_a_drill_of_a_chosen_backup_restores_that_one(environment, destination, postgres_spec):
    fill_postgres(postgres_spec, rows=30)
    database = database_for(environment, postgres_spec)
    first = run_backup_now(environment=environment, kind="database", database=database)
    run_backup_now(environment=environment, kind="database", database=database)

    drill = run_drill_now(database=database, backup=first)

    assert drill.status == DrillStatus.PASSED, drill.message
    assert drill.backup == first


def test_a_drill_on_another_drill_server_creates_the_throwaway_database_there(
    environment, destination, postgres_spec
):
    fill_postgres(postgres_spec, rows=20)
    database = database_for(environment, postgres_spec, host="localhost")
    run_backup_now(environment=environment, kind="database", database=database)
    server = postgres_server()
    DrillPolicy.objects.create(
        database=database,
        target_host=server.host,
        target_port=server.port,
        target_username=server.user,
        target_password=server.password,
        name_prefix="drill_elsewhere_",
    )

    drill = run_drill_now(database=database)

    assert drill.status == DrillStatus.PASSED, drill.message
    assert drill.throwaway_name == f"drill_elsewhere_{drill.short_id}"
    assert not database_exists(server, drill.throwaway_name)


def test_a_backup_whose_recorded_counts_differ_fails_the_drill_naming_the_table(
    environment, destination, postgres_spec
):
    fill_postgres(postgres_spec, rows=50)
    database = database_for(environment, postgres_spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    backup.row_counts = {**backup.row_counts, "public.customers": 7}
    backup.save()

    drill = run_drill_now(database=database)

    assert drill.status == DrillStatus.FAILED
    assert "public.customers: 7 recorded, 50 restored" in drill.message
    assert "documents" not in drill.message
    assert not database_exists(postgres_spec, drill.throwaway_name)
    alert = Alert.objects.get(kind=AlertKind.DRILL_FAILED)
    assert "public.customers: 7 recorded, 50 restored" in alert.message
    assert alert.resolved_at is None


def test_a_table_missing_from_the_dump_fails_the_mariadb_drill_naming_it(
    environment, destination, mariadb_spec
):
    fill_mariadb(mariadb_spec, rows=20)
    database = database_for(environment, mariadb_spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    backup.row_counts = {**backup.row_counts, "invoices": 12}
    backup.save()

    drill = run_drill_now(database=database)

    assert drill.status == DrillStatus.FAILED
    assert "invoices: 12 recorded, 0 restored" in drill.message
    assert not database_exists(mariadb_spec, drill.throwaway_name)


def test_a_corrupted_artifact_fails_the_drill_before_anything_is_created(
    environment, destination, postgres_spec
):
    fill_postgres(postgres_spec, rows=50)
    database = database_for(environment, postgres_spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    flip_a_byte(backup)

    drill = run_drill_now(database=database)

    assert drill.status == DrillStatus.FAILED
    assert "could not be read" in drill.message and "do not match the recorded" in drill.message
    assert not database_exists(postgres_spec, drill.throwaway_name)
    assert Alert.objects.filter(kind=AlertKind.DRILL_FAILED, resolved_at=None).count() == 1


def test_a_truncated_artifact_with_its_checksum_fails_the_drill_and_drops_the_copy(
    environment, destination, postgres_spec
):
    """A dump cut short (recorded size and checksum made to agree) fails in the load."""
    fill_postgres(postgres_spec, rows=300)
    database = database_for(environment, postgres_spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    path = artifact_path(backup)
    data = path.read_bytes()[: backup.size // 2]
    path.write_bytes(data)
    backup.size = len(data)
    backup.checksum_sha256 = hashlib.sha256(data).hexdigest()
    backup.save()
    backup.copies.update(size=len(data))

    drill = run_drill_now(database=database)

    assert drill.status == DrillStatus.FAILED
    assert "truncated" in drill.message, drill.message
    assert not database_exists(postgres_spec, drill.throwaway_name)


def test_a_passing_drill_resolves_the_open_drill_failed_alert(
    environment, destination, sqlite_spec
):
    fill_sqlite(sqlite_spec, rows=20)
    database = database_for(environment, sqlite_spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    good = dict(backup.row_counts)
    backup.row_counts = {**good, "customers": 1}
    backup.save()
    assert run_drill_now(database=database).status == DrillStatus.FAILED
    backup.row_counts = good
    backup.save()

    assert run_drill_now(database=database).status == DrillStatus.PASSED

    alert = Alert.objects.get(kind=AlertKind.DRILL_FAILED)
    assert alert.resolved_at is not None


def test_a_drill_over_its_objective_raises_rto_exceeded_until_one_meets_it(
    environment, destination, sqlite_spec
):
    fill_sqlite(sqlite_spec, rows=20)
    database = database_for(environment, sqlite_spec)
    run_backup_now(environment=environment, kind="database", database=database)
    # An objective of 0 s no drill can meet (set here; the API asks for at least 1 s).
    policy = DrillPolicy.objects.create(database=database, rto_objective_seconds=0)

    slow = run_drill_now(database=database)

    assert slow.status == DrillStatus.PASSED, slow.message
    alert = Alert.objects.get(kind=AlertKind.RTO_EXCEEDED)
    assert f"in {slow.rto_seconds:.1f} s; the objective is 0 s" in alert.message
    assert alert.resolved_at is None

    policy.rto_objective_seconds = 3600
    policy.save()
    assert run_drill_now(database=database).status == DrillStatus.PASSED
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_a_files_drill_extracts_to_a_temporary_directory_and_compares_every_entry(
    environment, destination, organisation_dir, tmp_path
):
    environment.files_path = str(make_files_tree(organisation_dir / "files"))
    environment.save()
    backup = run_backup_now(environment=environment, kind="filesystem")

    drill = run_drill_now(environment=environment)

    assert drill.status == DrillStatus.PASSED, drill.message
    assert drill.backup == backup
    assert drill.database is None
    assert "every type, size and checksum matches" in drill.message
    assert drill.restored_rows == drill.expected_rows == sum(backup.row_counts.values())
    assert not database_exists(ConnectionSpec(engine="files"), drill.throwaway_name)


def test_a_files_backup_whose_counts_differ_fails_the_drill(
    environment, destination, organisation_dir
):
    environment.files_path = str(make_files_tree(organisation_dir / "files"))
    environment.save()
    backup = run_backup_now(environment=environment, kind="filesystem")
    backup.row_counts = {**backup.row_counts, "files": 99}
    backup.save()

    drill = run_drill_now(environment=environment)

    assert drill.status == DrillStatus.FAILED
    assert "files: 99 recorded, 3 restored" in drill.message


def test_a_second_drill_of_the_same_database_while_one_is_active_is_a_conflict(
    environment, destination, sqlite_spec
):
    fill_sqlite(sqlite_spec, rows=5)
    database = database_for(environment, sqlite_spec)
    run_backup_now(environment=environment, kind="database", database=database)
    drill_request(database=database, enqueue=False)

    with pytest.raises(Conflict, match="already scheduled or running"):
        drill_request(database=database, enqueue=False)


def test_drills_of_two_organisations_side_by_side_keep_to_their_own_databases(
    environment, destination, other_organisation, make_postgres_database
):
    other_env = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation)
    )
    factories.DestinationFactory(organisation=other_organisation)
    ours, theirs = make_postgres_database(), make_postgres_database()
    fill_postgres(ours, rows=30)
    fill_postgres(theirs, rows=12)
    our_db = database_for(environment, ours)
    their_db = database_for(other_env, theirs)
    run_backup_now(environment=environment, kind="database", database=our_db)
    run_backup_now(environment=other_env, kind="database", database=their_db)
    theirs_before = table_checksums(theirs)

    ours_drill = run_drill_now(database=our_db)
    theirs_drill = run_drill_now(database=their_db)

    assert ours_drill.status == theirs_drill.status == DrillStatus.PASSED
    assert ours_drill.restored_rows == 30 + 15 + 60
    assert theirs_drill.restored_rows == 12 + 6 + 24
    assert table_checksums(theirs) == theirs_before
    assert list(Drill.objects.filter(database=their_db)) == [theirs_drill]


# --- the schedule and the reaper -----------------------------------------------------------


def test_the_tick_requests_a_due_drill_once_and_the_task_runs_it(
    environment, destination, sqlite_spec, django_capture_on_commit_callbacks
):
    fill_sqlite(sqlite_spec, rows=10)
    database = database_for(environment, sqlite_spec)
    run_backup_now(environment=environment, kind="database", database=database)
    now = timezone.now().replace(second=30, microsecond=0)
    DrillPolicy.objects.create(database=database, enabled=True, cron="* * * * *")
    DrillPolicy.objects.filter(database=database).update(updated_at=now - timedelta(minutes=5))

    with django_capture_on_commit_callbacks(execute=True):
        first = drills_tick(now=now)
    again = drills_tick(now=now)

    assert [d.database for d in first.started] == [database]
    assert again.started == []
    (drill,) = first.started
    assert drill.trigger == DrillTrigger.SCHEDULED
    (task,) = [t for t in queued_tasks() if t["func"] == "drills.tasks.run_drill"]
    assert task["args"] == (str(drill.id),)

    assert tasks.run_drill(*task["args"]) == DrillStatus.PASSED
    assert tasks.run_drill(*task["args"]) == "skipped"  # duplicate delivery


def test_a_disabled_policy_moves_its_slot_without_drilling(environment, sqlite_spec):
    database = database_for(environment, sqlite_spec)
    now = timezone.now().replace(second=30, microsecond=0)
    DrillPolicy.objects.create(database=database, enabled=False, cron="* * * * *")
    DrillPolicy.objects.filter(database=database).update(updated_at=now - timedelta(minutes=5))

    result = drills_tick(now=now, enqueue=False)

    assert result.started == [] and result.skipped == 1
    assert not Drill.objects.exists()


def test_a_scheduled_drill_without_a_backup_is_refused_and_the_slot_consumed(
    environment, sqlite_spec
):
    database = database_for(environment, sqlite_spec)
    now = timezone.now().replace(second=30, microsecond=0)
    DrillPolicy.objects.create(database=database, enabled=True, frequency="hourly")
    DrillPolicy.objects.filter(database=database).update(updated_at=now - timedelta(hours=2))

    result = drills_tick(now=now, enqueue=False)

    assert result.started == []
    assert "no completed backup" in result.refused[0]
    assert DrillPolicy.objects.get(database=database).last_slot_at is not None


def test_the_reaper_fails_a_drill_whose_worker_died_and_drops_its_throwaway_database(
    environment, destination, postgres_spec
):
    fill_postgres(postgres_spec, rows=10)
    database = database_for(environment, postgres_spec)
    run_backup_now(environment=environment, kind="database", database=database)
    drill = drill_request(database=database, enqueue=False)
    # What a worker killed mid-load leaves: a running drill, its throwaway database.
    throwaway = f"strongbox_drill_{drill.short_id}"
    left = postgres_server(throwaway)
    get_engine("postgresql").create_database(left)
    long_ago = timezone.now() - timedelta(hours=1)
    Drill.objects.filter(pk=drill.pk).update(
        status=DrillStatus.RUNNING,
        started_at=long_ago,
        heartbeat_at=long_ago,
        throwaway_name=throwaway,
    )

    result = drills_tick(enqueue=False)

    assert [d.pk for d in result.reaped] == [drill.pk]
    drill.refresh_from_db()
    assert drill.status == DrillStatus.FAILED
    assert "stopped responding" in drill.message and throwaway in drill.message
    assert not database_exists(left, throwaway)
    assert Alert.objects.filter(kind=AlertKind.DRILL_FAILED).count() == 1
    assert table_checksums(postgres_spec)  # the source still answers, untouched
