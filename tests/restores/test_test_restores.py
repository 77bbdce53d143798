"""Test restores: the latest backup restored into scratch copies, counted, and dropped."""

import pytest
from django_q.models import Schedule as QSchedule

from alerts.models import Alert, AlertKind
from restores.services import backup_test_restore, backups_due_for_test_restore, restores_test_due
from tests import factories
from tests.backups.helpers import database_for, make_files_tree, run_backup_now
from tests.fixtures.databases import fill_mariadb, fill_postgres, table_checksums
from tests.restores.helpers import leftovers

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_a_test_restore_records_verified_by_restore_and_drops_the_scratch_database(
    engine, environment, destination, request
):
    make, fill = {
        "postgresql": ("make_postgres_database", fill_postgres),
        "mariadb": ("make_mariadb_database", fill_mariadb),
    }[engine]
    spec = request.getfixturevalue(make)()
    fill(spec, rows=100)
    before = table_checksums(spec)
    backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, spec)
    )

    assert backup_test_restore(backup=backup) is True

    backup.refresh_from_db()
    assert backup.verified_by_restore_at is not None
    assert backup.verification_message.startswith("Verified by restore at ")
    assert "3 table(s), every row count matches" in backup.verification_message
    assert leftovers(spec) == []
    assert table_checksums(spec) == before


def test_a_test_restore_of_a_full_backup_uses_scratch_copies_in_the_temporary_directory(
    environment, destination, postgres_spec, sqlite_spec, organisation_dir, tmp_path, settings
):
    fill_postgres(postgres_spec, rows=20)
    database_for(environment, postgres_spec, slug="main")
    database_for(environment, sqlite_spec, slug="lite")
    environment.files_path = str(make_files_tree(organisation_dir / "files"))
    environment.save()
    backup = run_backup_now(environment=environment, kind="full")

    assert backup_test_restore(backup=backup) is True, backup.verification_message
    assert list((tmp_path / "tmp").glob(".*sbx-*")) == []
    assert leftovers(postgres_spec) == []


def test_a_row_count_mismatch_fails_the_test_restore_with_an_alert(
    environment, destination, postgres_spec
):
    fill_postgres(postgres_spec, rows=50)
    backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, postgres_spec)
    )
    backup.row_counts = {**backup.row_counts, "public.customers": 7}
    backup.save()

    assert backup_test_restore(backup=backup) is False

    backup.refresh_from_db()
    assert backup.verified_by_restore_at is None
    assert "Restore test failed" in backup.verification_message
    assert "public.customers: 7 recorded, 50 restored" in backup.verification_message
    alert = Alert.objects.get(kind=AlertKind.VERIFICATION_FAILED)
    assert alert.backup == backup
    assert leftovers(postgres_spec) == []


def test_the_periodic_task_tests_the_latest_backup_of_environments_that_ask_for_it(
    project, environment, destination, sqlite_spec
):
    database = database_for(environment, sqlite_spec)
    older = run_backup_now(environment=environment, kind="database", database=database)
    latest = run_backup_now(environment=environment, kind="database", database=database)
    quiet = factories.EnvironmentFactory(project=project)
    factories.BackupFactory(environment=quiet)
    assert list(backups_due_for_test_restore()) == []
    factories.ScheduleFactory(environment=environment, verify_by_restore=True)
    factories.ScheduleFactory(environment=quiet, verify_by_restore=False)

    assert list(backups_due_for_test_restore()) == [latest]
    assert restores_test_due() == [(latest, True)]
    assert list(backups_due_for_test_restore()) == []
    older.refresh_from_db()
    assert older.verified_by_restore_at is None


def test_the_periodic_tasks_are_registered_with_the_scheduler():
    funcs = set(QSchedule.objects.values_list("func", flat=True))
    assert {
        "restores.tasks.reap_stale_restores",
        "restores.tasks.test_restore_latest_backups",
    } <= funcs
