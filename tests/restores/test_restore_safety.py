"""What a restore refuses, and how a failing one leaves the target exactly as it was."""

import contextlib
import os
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from alerts.models import Alert, AlertKind
from backups.models import BackupStatus
from config.errors import Conflict, InvalidInput, NotFound, Unprocessable
from restores.models import RestoreStatus
from restores.selectors import restore_get, restore_progress_event, restores_for_environment
from restores.services import restore_request, restores_reap_stale
from tests import factories
from tests.backups.helpers import database_for, run_backup_now
from tests.fixtures.databases import PostgreSQLEngine, fill_postgres, fill_sqlite, table_checksums
from tests.restores.helpers import flip_a_byte, leftovers, run_restore_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def sqlite_backup(environment, destination, sqlite_spec):
    fill_sqlite(sqlite_spec, rows=100)
    database = database_for(environment, sqlite_spec)
    return run_backup_now(environment=environment, kind="database", database=database)


def _tables(spec):
    with PostgreSQLEngine().connect(spec) as conn:
        return sorted(
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        )


def test_a_corrupted_artifact_is_refused_and_the_target_is_untouched(
    environment, destination, postgres_spec
):
    fill_postgres(postgres_spec, rows=100)
    backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, postgres_spec)
    )
    with PostgreSQLEngine().connect(postgres_spec) as conn:
        conn.execute("DELETE FROM customers")
    before = table_checksums(postgres_spec)
    flip_a_byte(backup)

    restore = run_restore_now(backup=backup, target_type="same")

    assert restore.status == RestoreStatus.FAILED
    assert "failed verification" in restore.message and "do not match" in restore.message
    assert [(p["name"], p["status"]) for p in restore.phases] == [("VERIFY", "ERROR")]
    assert restore.safety_backup is None
    assert table_checksums(postgres_spec) == before
    assert leftovers(postgres_spec) == []
    kinds = set(Alert.objects.values_list("kind", flat=True))
    assert {AlertKind.RESTORE_FAILED, AlertKind.VERIFICATION_FAILED} <= kinds


def test_an_artifact_that_cannot_be_decrypted_is_refused_before_anything_is_touched(
    sqlite_backup, sqlite_spec, settings
):
    before = table_checksums(sqlite_spec)
    settings.STRONGBOX_MASTER_KEY = "not the key it was encrypted with"

    restore = run_restore_now(backup=sqlite_backup, target_type="same")

    assert restore.status == RestoreStatus.FAILED
    assert "cannot be decrypted" in restore.message
    assert table_checksums(sqlite_spec) == before


def test_a_load_that_fails_half_way_leaves_the_target_as_it_was(
    environment, destination, postgres_spec
):
    fill_postgres(postgres_spec, rows=100)
    with PostgreSQLEngine().connect(postgres_spec) as conn:
        # pg_restore runs with an empty search_path: the unqualified table in the function
        # body breaks the CHECK while "guarded" is loaded, after other tables were loaded.
        conn.execute("CREATE TABLE lookup (id integer PRIMARY KEY)")
        conn.execute("INSERT INTO lookup VALUES (1)")
        conn.execute(
            "CREATE FUNCTION lookup_has(x integer) RETURNS boolean LANGUAGE sql"
            " AS 'SELECT EXISTS (SELECT 1 FROM lookup WHERE id = x)'"
        )
        conn.execute(
            "CREATE TABLE guarded (id integer PRIMARY KEY, ref integer CHECK (lookup_has(ref)))"
        )
        conn.execute("INSERT INTO guarded VALUES (1, 1)")
    backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, postgres_spec)
    )
    with PostgreSQLEngine().connect(postgres_spec) as conn:
        conn.execute("DELETE FROM measurements WHERE id > 10")
    before, tables = table_checksums(postgres_spec), _tables(postgres_spec)

    restore = run_restore_now(backup=backup, target_type="same")

    assert restore.status == RestoreStatus.FAILED, restore.message
    assert "The load failed" in restore.message and "lookup" in restore.message
    assert [(p["name"], p["status"]) for p in restore.phases][-1] == ("RESTORE", "ERROR")
    assert restore.safety_backup.status == BackupStatus.COMPLETED
    assert table_checksums(postgres_spec) == before
    assert _tables(postgres_spec) == tables
    assert leftovers(postgres_spec) == []
    assert Alert.objects.filter(kind=AlertKind.RESTORE_FAILED, restore=restore).exists()


def test_row_counts_that_do_not_match_fail_the_check_before_the_swap(sqlite_backup, sqlite_spec):
    sqlite_backup.row_counts = {**sqlite_backup.row_counts, "customers": 99}
    sqlite_backup.save()
    before = table_checksums(sqlite_spec)

    restore = run_restore_now(backup=sqlite_backup, target_type="same", take_safety_backup=False)

    assert restore.status == RestoreStatus.FAILED
    assert "customers: 99 recorded, 100 restored" in restore.message
    assert [p["name"] for p in restore.phases][-1] == "CHECK"
    assert table_checksums(sqlite_spec) == before
    assert leftovers(sqlite_spec) == []


def test_a_safety_backup_that_cannot_run_stops_the_restore(sqlite_backup, sqlite_spec):
    factories.BackupFactory(
        environment=sqlite_backup.environment,
        database=sqlite_backup.database,
        status=BackupStatus.IN_PROGRESS,
    )

    restore = run_restore_now(backup=sqlite_backup, target_type="same")

    assert restore.status == RestoreStatus.FAILED
    assert "safety backup of the target failed" in restore.message
    assert "already running" in restore.message


def test_a_target_in_another_organisation_is_not_found(sqlite_backup, other_organisation):
    foreign = factories.EnvironmentFactory(project__organisation=other_organisation)
    with pytest.raises(NotFound):
        restore_request(backup=sqlite_backup, target_type="other", target_environment=foreign.id)
    with pytest.raises(NotFound):
        restore_request(backup=sqlite_backup, target_type="other", target_environment="nope")


def test_a_second_restore_into_the_same_target_is_a_conflict(sqlite_backup):
    first = restore_request(backup=sqlite_backup, target_type="same", enqueue=False)
    with pytest.raises(Conflict, match="already running"):
        restore_request(backup=sqlite_backup, target_type="same")
    first.status = RestoreStatus.COMPLETED
    first.save()
    assert restore_request(backup=sqlite_backup, target_type="same").status == "scheduled"


def test_a_postgresql_dump_from_a_newer_major_version_is_refused_naming_both(
    project, environment, destination
):
    backup = factories.BackupFactory(
        environment=environment, engine="postgresql", engine_version="16.4"
    )
    target_env = factories.EnvironmentFactory(project=project)
    factories.DatabaseFactory(environment=target_env, engine="postgresql", version="15.20")

    with pytest.raises(Unprocessable) as caught:
        restore_request(backup=backup, target_type="other", target_environment=target_env)

    assert "PostgreSQL 16.4" in caught.value.message
    assert "PostgreSQL 15.20" in caught.value.message


def test_mysql_and_mariadb_dumps_interchange_but_other_engines_do_not(project, environment):
    backup = factories.BackupFactory(
        environment=environment, engine="mariadb", engine_version="10.11"
    )
    mysql_env = factories.EnvironmentFactory(project=project)
    factories.DatabaseFactory(environment=mysql_env, engine="mysql")
    pg_env = factories.EnvironmentFactory(project=project)
    factories.DatabaseFactory(environment=pg_env, engine="postgresql")

    accepted = restore_request(backup=backup, target_type="other", target_environment=mysql_env)
    assert accepted.target_database.engine == "mysql"
    with pytest.raises(Unprocessable, match="no mariadb database"):
        restore_request(backup=backup, target_type="other", target_environment=pg_env)


def test_requests_are_validated_with_messages_naming_the_field(project, environment):
    backup = factories.BackupFactory(environment=environment, kind="filesystem", engine="files")
    with pytest.raises(Unprocessable, match="targetType 'new' is disabled until orchestration"):
        restore_request(backup=backup, target_type="new")
    with pytest.raises(InvalidInput) as caught:
        restore_request(backup=backup, target_type="other")
    assert "target_environment" in caught.value.fields
    with pytest.raises(InvalidInput) as caught:
        restore_request(backup=backup, target_type="sideways")
    assert "target_type" in caught.value.fields
    with pytest.raises(Unprocessable) as caught:
        restore_request(backup=backup, target_type="same", pitr_timestamp=timezone.now())
    assert "pitr_timestamp" in caught.value.fields
    with pytest.raises(Unprocessable, match="no files directory"):
        restore_request(backup=backup, target_type="same")
    running = factories.BackupFactory(environment=environment, status=BackupStatus.IN_PROGRESS)
    with pytest.raises(Unprocessable, match="Only a completed backup"):
        restore_request(backup=running, target_type="same")


def test_a_restore_whose_worker_died_is_reaped_with_an_alert(sqlite_backup, settings):
    restore = restore_request(backup=sqlite_backup, target_type="same", enqueue=False)
    old = timezone.now() - timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS + 5)
    type(restore).objects.filter(pk=restore.pk).update(
        status=RestoreStatus.IN_PROGRESS, started_at=old, heartbeat_at=old, phase="RESTORE"
    )
    reaped = restores_reap_stale()

    assert [r.pk for r in reaped] == [restore.pk]
    restore.refresh_from_db()
    assert restore.status == RestoreStatus.FAILED
    assert "stopped responding" in restore.message
    name = sqlite_backup.database.name
    assert f"It was to replace the database {name} (SQLite)." in restore.message
    alert = Alert.objects.get(kind=AlertKind.RESTORE_FAILED, restore=restore)
    assert alert.title.endswith(f"({name}) failed: its worker died")
    assert restores_reap_stale() == []


def test_a_restore_waiting_for_its_live_safety_backup_is_not_reaped(sqlite_backup, settings):
    restore = restore_request(backup=sqlite_backup, target_type="same", enqueue=False)
    old = timezone.now() - timedelta(seconds=settings.STRONGBOX_HEARTBEAT_TIMEOUT_SECONDS + 5)
    safety = factories.BackupFactory(
        environment=sqlite_backup.environment,
        status=BackupStatus.IN_PROGRESS,
        trigger="safety",
        heartbeat_at=timezone.now(),
    )
    type(restore).objects.filter(pk=restore.pk).update(
        status=RestoreStatus.IN_PROGRESS, started_at=old, heartbeat_at=old, safety_backup=safety
    )

    assert restores_reap_stale() == []

    type(safety).objects.filter(pk=safety.pk).update(heartbeat_at=old)
    assert [r.pk for r in restores_reap_stale()] == [restore.pk]


def test_restore_logs_are_listed_for_the_source_and_the_target_and_scoped(
    project, environment, organisation, other_organisation
):
    other = factories.EnvironmentFactory(project=project)
    third = factories.EnvironmentFactory(project=project)
    into_other = factories.RestoreFactory(
        backup__environment=environment, target_environment=other, target_type="other"
    )
    within = factories.RestoreFactory(backup__environment=other, status="completed")

    assert set(restores_for_environment(organisation=organisation, environment=environment)) == {
        into_other
    }
    assert set(restores_for_environment(organisation=organisation, environment=other)) == {
        into_other,
        within,
    }
    assert list(restores_for_environment(organisation=organisation, environment=third)) == []
    assert restore_get(organisation=organisation, restore_id=str(within.id)) == within
    with pytest.raises(NotFound):
        restore_get(organisation=other_organisation, restore_id=str(within.id))
    event = restore_progress_event(within)
    assert event["status"] == "completed" and event["percent"] == 100.0


def test_the_command_restores_and_exits_non_zero_on_failure(sqlite_backup, sqlite_spec, capsys):
    call_command("restore_backup", sqlite_backup.name, "--no-safety-backup")
    assert "completed" in capsys.readouterr().out

    flip_a_byte(sqlite_backup)
    with pytest.raises(CommandError, match="did not complete"):
        call_command("restore_backup", str(sqlite_backup.id))
    with pytest.raises(CommandError, match="No backup"):
        call_command("restore_backup", "missing")


def _kill_child_when_it_runs(name: str, found: list, stop) -> None:
    """SIGKILL the first child process of this test called ``name`` that loads data (not the
    ``--schema-only`` run that reads the dump's roles first), at OS level, no database."""
    import signal
    from pathlib import Path

    me = str(os.getpid())
    while not stop.is_set():
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            command = stat[stat.index("(") + 1 : stat.rindex(")")]
            state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
            if command == name and ppid == me and state != "Z":
                try:
                    argv = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                # Empty: it is exiting (the quick --schema-only run, whose zombie would be
                # "killed" to no effect while the real load went on and completed).
                if not argv or b"--schema-only" in argv:
                    continue
                time.sleep(0.3)  # let it load part of the data
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)
                found.append(int(proc.name))
                return
        time.sleep(0.02)


def test_a_load_killed_midway_leaves_the_target_as_it_was(environment, destination, postgres_spec):
    fill_postgres(postgres_spec, rows=100)
    with PostgreSQLEngine().connect(postgres_spec) as conn:
        conn.execute(
            "CREATE TABLE bulk AS SELECT i AS id, md5(i::text) AS payload"
            " FROM generate_series(1, 1500000) i"
        )
    database = database_for(environment, postgres_spec, options={"restore_jobs": 1})
    backup = run_backup_now(environment=environment, kind="database", database=database)
    with PostgreSQLEngine().connect(postgres_spec) as conn:
        conn.execute("DELETE FROM customers WHERE id > 50")
    before, tables = table_checksums(postgres_spec), _tables(postgres_spec)
    killed, stop = [], threading.Event()
    watcher = threading.Thread(target=_kill_child_when_it_runs, args=("pg_restore", killed, stop))
    watcher.start()
    try:
        restore = run_restore_now(backup=backup, target_type="same", take_safety_backup=False)
    finally:
        stop.set()
        watcher.join()

    assert killed, "pg_restore was never seen running"
    assert restore.status == RestoreStatus.FAILED
    assert "killed by signal 9" in restore.message
    assert table_checksums(postgres_spec) == before
    assert _tables(postgres_spec) == tables
    assert leftovers(postgres_spec) == []


def test_an_unreachable_target_fails_the_restore_with_a_clear_message(
    environment, destination, postgres_spec
):
    fill_postgres(postgres_spec, rows=10)
    database = database_for(environment, postgres_spec)
    backup = run_backup_now(environment=environment, kind="database", database=database)
    type(database).objects.filter(pk=database.pk).update(port=1)

    restore = run_restore_now(backup=backup, target_type="same")

    assert restore.status == RestoreStatus.FAILED
    assert restore.message.startswith("The target cannot be reached, so nothing was restored")
    assert leftovers(postgres_spec) == []
