"""The write path of projects, environments and databases (``organizations.services``).

The API tests check how these rules reach a client; these check each rule once, at the
service every interface calls.
"""

import time

import pytest

from backups.models import BackupStatus
from config.errors import Conflict, InvalidInput
from organizations import services
from organizations.models import Database, Environment, Project
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def allowed(organisation_dir):
    """A directory the organisation may use (inside its own root)."""
    return organisation_dir


# --- slugs ------------------------------------------------------------------------------------


def test_a_slug_left_out_is_derived_from_the_name_and_kept_free(organisation, project):
    assert project.slug == "dashboard"
    again = services.project_create(organisation=organisation, name="Dashboard")
    third = services.project_create(organisation=organisation, name="Dashboard")
    unsluggable = services.project_create(organisation=organisation, name="!!!")
    assert (again.slug, third.slug, unsluggable.slug) == ("dashboard-2", "dashboard-3", "item")


def test_a_slug_is_unique_among_siblings_only(organisation, other_organisation, project):
    with pytest.raises(InvalidInput) as raised:
        services.project_create(organisation=organisation, name="Other", slug="dashboard")
    assert raised.value.fields == {"slug": ["This slug is already in use."]}
    elsewhere = services.project_create(
        organisation=other_organisation, name="Other", slug="dashboard"
    )
    assert elsewhere.organisation == other_organisation


def test_an_update_may_keep_its_own_slug_but_not_take_a_siblings(project, environment):
    sibling = services.environment_create(project=project, name="Production")
    services.environment_update(environment=environment, slug="staging", name="Staging 2")
    with pytest.raises(InvalidInput) as raised:
        services.environment_update(environment=environment, slug=sibling.slug)
    assert list(raised.value.fields) == ["slug"]
    environment.refresh_from_db()
    assert (environment.name, environment.slug) == ("Staging 2", "staging")


def test_environments_and_databases_get_slugs_within_their_parent(project, environment):
    other_project = services.project_create(organisation=project.organisation, name="Other")
    assert services.environment_create(project=other_project, name="Staging").slug == "staging"
    first = services.database_create(
        environment=environment, name="Main", engine="postgresql", database_name="app"
    )
    second = services.database_create(
        environment=environment, name="Main", engine="postgresql", database_name="app"
    )
    assert (first.slug, second.slug) == ("main", "main-2")


# --- server paths -----------------------------------------------------------------------------


def test_an_environment_files_directory_must_be_allowed(project, environment, allowed):
    with pytest.raises(InvalidInput) as raised:
        services.environment_create(project=project, name="Prod", files_path="/etc")
    assert list(raised.value.fields) == ["files_path"]
    assert "outside the directories Quant Gov may use" in raised.value.message
    with pytest.raises(InvalidInput):
        services.environment_update(environment=environment, files_path="relative/dir")

    services.environment_update(environment=environment, files_path=str(allowed / "uploads"))
    assert Environment.objects.get(pk=environment.pk).files_path == str(allowed / "uploads")
    services.environment_update(environment=environment, files_path="")
    assert Environment.objects.get(pk=environment.pk).files_path == ""


def test_a_sqlite_file_must_be_allowed_whatever_changed(environment, allowed):
    with pytest.raises(InvalidInput) as raised:
        services.database_create(
            environment=environment, name="Stolen", engine="sqlite", database_name="/etc/x.db"
        )
    assert list(raised.value.fields) == ["database_name"]

    # A server database's name is not a path; switching it to SQLite makes it one.
    postgres = services.database_create(
        environment=environment, name="App", engine="postgresql", database_name="/etc/x.db"
    )
    with pytest.raises(InvalidInput) as raised:
        services.database_update(database=postgres, engine="sqlite")
    assert list(raised.value.fields) == ["database_name"]
    moved = services.database_update(
        database=postgres, engine="sqlite", database_name=str(allowed / "app.db")
    )
    assert (moved.engine, moved.database_name) == ("sqlite", str(allowed / "app.db"))


# --- databases --------------------------------------------------------------------------------


def test_a_database_update_keeps_what_is_left_out(environment):
    database = services.database_create(
        environment=environment,
        name="Orders",
        engine="postgresql",
        host="db.internal",
        port=5432,
        username="app",
        password="s3cret",
        database_name="orders",
    )
    services.database_update(database=database, username="backup")
    stored = Database.objects.get(pk=database.pk)
    assert (stored.password, stored.port, stored.username) == ("s3cret", 5432, "backup")

    services.database_update(database=database, password="", port=None)
    stored = Database.objects.get(pk=database.pk)
    assert (stored.password, stored.port, stored.host) == ("", None, "db.internal")


# --- deleting ---------------------------------------------------------------------------------


def test_a_project_or_environment_with_live_backups_is_not_deleted(project, environment):
    factories.BackupFactory(environment=environment)
    factories.BackupFactory(environment=environment, status=BackupStatus.DELETED)
    with pytest.raises(Conflict, match="This environment still has 1 backup"):
        services.environment_delete(environment=environment)
    with pytest.raises(Conflict, match="This project still has 1 backup"):
        services.project_delete(project=project)
    assert Environment.objects.filter(pk=environment.pk).exists()


def test_a_project_whose_backups_are_all_deleted_goes_with_its_environments(project, environment):
    factories.BackupFactory(environment=environment, status=BackupStatus.DELETED)
    services.project_delete(project=project)
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Environment.objects.filter(pk=environment.pk).exists()


def test_a_database_is_not_deleted_while_it_is_backed_up_and_its_backups_outlive_it(
    environment,
):
    database = factories.DatabaseFactory(environment=environment)
    running = factories.BackupFactory(
        environment=environment, database=database, status=BackupStatus.IN_PROGRESS
    )
    with pytest.raises(Conflict, match="running"):
        services.database_delete(database=database)

    running.status = BackupStatus.COMPLETED
    running.save()
    services.database_delete(database=database)
    running.refresh_from_db()
    assert running.database is None


@pytest.mark.django_db(transaction=True)
def test_a_delete_waits_for_a_backup_being_requested_and_then_refuses(environment):
    import threading

    from django.db import connection, transaction

    from backups.models import Backup
    from config.errors import Conflict
    from organizations.services import environment_delete, environment_lock

    if connection.vendor != "postgresql":
        pytest.skip("row locks: SQLite serialises writers itself (PostgreSQL profile)")
    locked, outcome = threading.Event(), []

    def request_a_backup():
        try:
            with transaction.atomic():
                environment_lock(environment=environment)  # what backup_request does first
                locked.set()
                time.sleep(0.5)  # the delete arrives meanwhile
                factories.BackupFactory(environment=environment)
        finally:
            connection.close()

    def delete_it():
        locked.wait(10)
        try:
            environment_delete(environment=environment)
            outcome.append("deleted")
        except Conflict as exc:
            outcome.append(exc.message)
        finally:
            connection.close()

    threads = [threading.Thread(target=request_a_backup), threading.Thread(target=delete_it)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcome == [
        "This environment still has 1 backup(s); delete them first so their artifacts are "
        "removed from the destinations."
    ]
    assert Backup.objects.filter(environment=environment).exists()
