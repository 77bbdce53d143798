"""The onboarding pages (projects, environments, databases, members), the project and
database pages and the dashboard's checklist and states, through Django's test client."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from backups.engines import ConnectionSpec
from backups.models import Backup, BackupStatus
from config.errors import InvalidInput
from organizations import services
from organizations.models import Database, Environment, Membership, Project, Role
from tests import factories
from tests.fixtures.databases import fill_sqlite
from tests.fixtures.tenants import tenant_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def database(environment):
    return factories.DatabaseFactory(environment=environment, name="Orders", slug="orders")


def new_pages(project, environment, database, membership):
    """Every page this feature adds that names an object (GET)."""
    return [
        reverse("project-detail", args=[project.id]),
        reverse("project-edit", args=[project.id]),
        reverse("project-delete", args=[project.id]),
        reverse("environment-new", args=[project.id]),
        reverse("environment-edit", args=[environment.id]),
        reverse("environment-delete", args=[environment.id]),
        reverse("database-new", args=[environment.id]),
        reverse("database-detail", args=[database.id]),
        reverse("database-edit", args=[database.id]),
        reverse("database-delete", args=[database.id]),
    ]


def new_actions(project, environment, database, backup, membership):
    """Every POST this feature adds that names an object."""
    return [
        reverse("project-edit", args=[project.id]),
        reverse("project-delete", args=[project.id]),
        reverse("environment-new", args=[project.id]),
        reverse("environment-edit", args=[environment.id]),
        reverse("environment-delete", args=[environment.id]),
        reverse("database-new", args=[environment.id]),
        reverse("database-edit", args=[database.id]),
        reverse("database-delete", args=[database.id]),
        reverse("database-backup", args=[database.id]),
        reverse("database-test", args=[database.id]),
        reverse("backup-retry", args=[backup.id]),
        reverse("member-role", args=[membership.id]),
        reverse("member-remove", args=[membership.id]),
    ]


def described_ids_exist(html: str) -> None:
    """Every aria-describedby names ids that exist on the page."""
    ids = set(re.findall(r'\sid="([^"]+)"', html))
    described = re.findall(r'aria-describedby="([^"]+)"', html)
    assert described, "no input is described"
    for value in described:
        for ref in value.split():
            assert ref in ids, f"aria-describedby points at a missing id {ref!r}"


# --- creating, editing, deleting --------------------------------------------------------------


def test_an_admin_creates_a_project_then_an_environment_then_a_database(
    client, owner, organisation
):
    client.force_login(owner)
    response = client.post(reverse("project-new"), {"name": "Shop", "slug": ""})
    project = Project.objects.get(organisation=organisation)
    assert project.slug == "shop"
    assert response["Location"] == reverse("environment-new", args=[project.id])

    response = client.post(
        reverse("environment-new", args=[project.id]), {"name": "Production", "files_path": ""}
    )
    environment = Environment.objects.get(project=project)
    assert response["Location"] == reverse("database-new", args=[environment.id])

    path = tenant_path(organisation, "orders.sqlite3")
    response = client.post(
        reverse("database-new", args=[environment.id]),
        {"name": "Orders", "engine": "sqlite", "database_name": str(path), "action": "save"},
    )
    database = Database.objects.get(environment=environment)
    assert response["Location"] == reverse("database-detail", args=[database.id])
    assert database.slug == "orders" and database.password == ""


def test_the_password_is_write_only_and_kept_when_left_empty(client, owner, environment):
    client.force_login(owner)
    database = factories.DatabaseFactory(
        environment=environment, engine="postgresql", host="127.0.0.1", password="s3cret-pw"
    )
    page = client.get(reverse("database-edit", args=[database.id])).content.decode()
    assert "s3cret-pw" not in page
    client.post(
        reverse("database-edit", args=[database.id]),
        {
            "name": "Renamed",
            "engine": "postgresql",
            "host": "127.0.0.1",
            "database_name": "app",
            "action": "save",
        },
    )
    database.refresh_from_db()
    assert database.name == "Renamed" and database.password == "s3cret-pw"
    client.post(
        reverse("database-edit", args=[database.id]),
        {
            "name": "Renamed",
            "engine": "postgresql",
            "host": "127.0.0.1",
            "database_name": "app",
            "clear_password": "on",
            "action": "save",
        },
    )
    database.refresh_from_db()
    assert database.password == ""


def test_a_form_error_names_its_field_and_is_linked_to_its_input(client, owner, environment):
    client.force_login(owner)
    response = client.post(
        reverse("database-new", args=[environment.id]),
        {
            "name": "",
            "engine": "postgresql",
            "port": "70000",
            "database_name": "",
            "action": "save",
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    for field in ("name", "port", "database_name"):
        assert f'id="id_{field}_error_1"' in html
    assert re.search(r'<input[^>]+aria-describedby="[^"]*id_port_error_1', html)
    described_ids_exist(html)
    assert not Database.objects.exists()


def test_a_service_rule_shows_on_its_field_as_the_api_refuses_it(
    client, owner, organisation, environment
):
    """A SQLite path outside the organisation's directory: the service's rule, on the field."""
    client.force_login(owner)
    response = client.post(
        reverse("database-new", args=[environment.id]),
        {"name": "Etc", "engine": "sqlite", "database_name": "/etc/passwd", "action": "save"},
    )
    assert response.status_code == 400
    assert 'id="id_database_name_error_1"' in response.content.decode()
    described_ids_exist(response.content.decode())
    assert not Database.objects.exists()


def test_a_slug_in_use_is_refused_on_the_slug_field(client, owner, organisation, project):
    client.force_login(owner)
    response = client.post(reverse("project-new"), {"name": "Other", "slug": project.slug})
    assert response.status_code == 400
    assert 'id="id_slug_error_1"' in response.content.decode()


def test_the_service_refuses_a_bad_port_and_engine_whoever_calls_it(environment):
    with pytest.raises(InvalidInput) as port:
        services.database_create(
            environment=environment, name="x", engine="postgresql", database_name="x", port=0
        )
    assert "port" in port.value.fields
    with pytest.raises(InvalidInput) as engine:
        services.database_create(
            environment=environment, name="x", engine="oracle", database_name="x"
        )
    assert "engine" in engine.value.fields
    with pytest.raises(InvalidInput) as name:
        services.project_update(project=environment.project, name=" ")
    assert "name" in name.value.fields


def test_deleting_an_environment_with_backups_is_refused_with_the_reason(
    client, owner, environment
):
    factories.BackupFactory(environment=environment)
    client.force_login(owner)
    response = client.post(reverse("environment-delete", args=[environment.id]), follow=True)
    assert "still has 1 backup" in response.content.decode()
    assert Environment.objects.filter(pk=environment.pk).exists()


def test_an_admin_deletes_an_empty_project(client, owner, project):
    client.force_login(owner)
    confirm = client.get(reverse("project-delete", args=[project.id]))
    assert "cannot be undone" in confirm.content.decode()
    response = client.post(reverse("project-delete", args=[project.id]))
    assert response["Location"] == reverse("dashboard")
    assert not Project.objects.filter(pk=project.pk).exists()


# --- roles and tenancy ------------------------------------------------------------------------


def test_a_viewer_sees_the_pages_without_buttons_and_every_write_is_403(
    client, viewer, owner, project, environment, database
):
    backup = factories.BackupFactory(
        environment=environment, database=database, status=BackupStatus.FAILED
    )
    membership = Membership.objects.get(user=owner)
    client.force_login(viewer)
    for url in (
        reverse("project-detail", args=[project.id]),
        reverse("database-detail", args=[database.id]),
        reverse("environment-detail", args=[project.id, environment.id]),
        reverse("dashboard"),
    ):
        html = client.get(url).content.decode()
        for label in ("Edit", "Add environment", "Add database", "Back up now", "Retry"):
            assert f">{label}<" not in html, (url, label)
    assert client.get(reverse("project-new")).status_code == 403
    assert client.post(reverse("project-new"), {"name": "X"}).status_code == 403
    for url in new_actions(project, environment, database, backup, membership):
        assert client.post(url, {"name": "X", "role": "admin"}).status_code == 403, url
    assert Project.objects.count() == 1 and Backup.objects.count() == 1
    assert Membership.objects.get(user=owner).role == Role.ADMIN


def test_an_operator_backs_up_but_does_not_edit(client, operator, project, environment, database):
    client.force_login(operator)
    html = client.get(reverse("database-detail", args=[database.id])).content.decode()
    assert ">Back up now<" in html and ">Edit<" not in html
    assert client.get(reverse("database-edit", args=[database.id])).status_code == 403


def test_another_organisations_objects_are_404_on_every_new_page(
    client, outsider, owner, project, environment, database
):
    backup = factories.BackupFactory(
        environment=environment, database=database, status=BackupStatus.FAILED
    )
    membership = Membership.objects.get(user=owner)
    client.force_login(outsider)  # an admin, of the other organisation
    for url in new_pages(project, environment, database, membership):
        assert client.get(url).status_code == 404, url
    for url in new_actions(project, environment, database, backup, membership):
        assert client.post(url, {"name": "Taken", "role": "viewer"}).status_code == 404, url
    project.refresh_from_db()
    assert project.name == "Dashboard"
    assert Database.objects.filter(pk=database.pk).exists()
    assert Backup.objects.count() == 1
    assert Membership.objects.get(user=owner).role == Role.ADMIN


# --- the database page --------------------------------------------------------------------------


def test_the_database_page_shows_runs_rates_and_one_series_per_chart(
    client, viewer, environment, database, destination
):
    other = factories.DatabaseFactory(environment=environment, name="Users", slug="users")
    now = timezone.now()
    statuses = [BackupStatus.COMPLETED] * 8 + [BackupStatus.FAILED] * 2
    for n, status in enumerate(statuses):
        created = now - timedelta(days=20 - n * 2)
        factories.BackupFactory(
            environment=environment,
            database=database,
            status=status,
            created_at=created,
            started_at=created,
            completed_at=created + timedelta(seconds=30 + n),
            size=1000 + n if status == BackupStatus.COMPLETED else None,
        )
    for n in range(5):  # the other database's backups are not drawn here
        factories.BackupFactory(
            environment=environment, database=other, created_at=now - timedelta(days=n)
        )
    client.force_login(viewer)
    response = client.get(reverse("database-detail", args=[database.id]))
    html = response.content.decode()
    assert html.count('data-outcome="ok"') == 8 and html.count('data-outcome="failed"') == 2
    health = response.context["health"]
    assert health.rate_30.succeeded == 8 and health.rate_30.failed == 2
    assert response.context["size_chart"].summary.startswith("8 completed backups")
    assert len(response.context["duration_chart"].points) == 8
    assert "80.0 %" in html


def test_retry_makes_a_new_backup_of_the_same_database(
    client, operator, environment, database, destination
):
    failed = factories.BackupFactory(
        environment=environment, database=database, status=BackupStatus.FAILED
    )
    failed.destinations.add(destination)
    client.force_login(operator)
    response = client.post(reverse("backup-retry", args=[failed.id]))
    assert response["Location"] == reverse("database-detail", args=[database.id])
    retry = Backup.objects.exclude(pk=failed.pk).get()
    assert retry.database == database and retry.status == BackupStatus.SCHEDULED
    assert list(retry.destinations.all()) == [destination]
    assert retry.description == f"Retry of {failed.name}"


def test_back_up_now_backs_up_only_this_database(
    client, operator, environment, database, destination
):
    factories.DatabaseFactory(environment=environment, name="Users", slug="users")
    client.force_login(operator)
    client.post(reverse("database-backup", args=[database.id]))
    assert list(Backup.objects.values_list("database", flat=True)) == [database.id]


def test_test_connection_reports_the_sqlite_version_and_a_missing_file(
    client, owner, organisation, environment
):
    path = tenant_path(organisation, "shop.sqlite3")
    fill_sqlite(ConnectionSpec(engine="sqlite", name=str(path)))
    client.force_login(owner)
    form = {"name": "Shop", "engine": "sqlite", "database_name": str(path), "action": "test"}
    ok = client.post(reverse("database-new", args=[environment.id]), form)
    assert ok.status_code == 200
    assert "Connected." in ok.content.decode()
    form["database_name"] = str(tenant_path(organisation, "missing.sqlite3"))
    bad = client.post(reverse("database-new", args=[environment.id]), form)
    assert "Connection failed" in bad.content.decode()
    assert not Database.objects.exists()  # testing saves nothing


# --- the dashboard ------------------------------------------------------------------------------


def test_an_empty_organisation_gets_a_checklist_that_ticks_itself_off(client, owner, organisation):
    client.force_login(owner)
    steps = client.get(reverse("dashboard")).context["checklist"]
    assert [s.done for s in steps] == [False, False, False, False]
    assert steps[0].url == reverse("project-new")
    project = factories.ProjectFactory(organisation=organisation)
    environment = factories.EnvironmentFactory(project=project)
    database = factories.DatabaseFactory(environment=environment)
    factories.DestinationFactory(organisation=organisation)
    steps = client.get(reverse("dashboard")).context["checklist"]
    assert [s.done for s in steps] == [True, True, False, False]
    assert steps[2].url == reverse("database-detail", args=[database.id])
    factories.BackupFactory(environment=environment, database=database)
    factories.ScheduleFactory(environment=environment)
    assert client.get(reverse("dashboard")).context["checklist"] is None


def test_an_environment_whose_one_database_failed_is_not_green(
    client, viewer, environment, database
):
    users = factories.DatabaseFactory(environment=environment, name="Users", slug="users")
    now = timezone.now()
    factories.BackupFactory(
        environment=environment,
        database=database,
        status=BackupStatus.FAILED,
        created_at=now - timedelta(hours=2),
    )
    # The environment's newest backup is a good one of the other database.
    factories.BackupFactory(environment=environment, database=users, created_at=now)
    client.force_login(viewer)
    html = client.get(reverse("dashboard")).content.decode()
    assert 'data-testid="environment-state">Failing<' in html
    assert 'data-state="failed"' in html and 'data-state="ok"' in html


def test_test_connection_reports_the_mariadb_version(client, owner, environment, mariadb_spec):
    client.force_login(owner)
    response = client.post(
        reverse("database-new", args=[environment.id]),
        {
            "name": "Billing",
            "engine": "mariadb",
            "host": mariadb_spec.host,
            "port": str(mariadb_spec.port),
            "username": mariadb_spec.user,
            "database_name": mariadb_spec.name,
            "action": "test",
        },
    )
    assert response.status_code == 200
    assert re.search(r"Server version \d+\.\d+", response.content.decode())


def test_test_connection_gives_the_exact_error_of_a_wrong_database(
    client, owner, environment, postgres_spec
):
    client.force_login(owner)
    response = client.post(
        reverse("database-new", args=[environment.id]),
        {
            "name": "Typo",
            "engine": "postgresql",
            "host": postgres_spec.host,
            "port": str(postgres_spec.port),
            "username": postgres_spec.user,
            "database_name": "sbx_no_such_database",
            "action": "test",
        },
    )
    html = response.content.decode()
    assert "Connection failed" in html
    assert "sbx_no_such_database" in html and "does not exist" in html


def test_the_host_policy_refuses_a_connection_test_on_the_host_field(
    client, owner, organisation, environment
):
    services.host_policy_set(organisation=organisation, allowed_hosts=["10.20.0.0/16"])
    client.force_login(owner)
    response = client.post(
        reverse("database-new", args=[environment.id]),
        {
            "name": "Local",
            "engine": "postgresql",
            "host": "127.0.0.1",
            "database_name": "postgres",
            "action": "test",
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_host_error_1"' in html and "Connected." not in html
    described_ids_exist(html)


def test_the_saved_connection_is_tested_from_the_database_page(
    client, operator, environment, postgres_spec
):
    database = factories.DatabaseFactory(
        environment=environment,
        engine="postgresql",
        host=postgres_spec.host,
        port=postgres_spec.port,
        username=postgres_spec.user,
        database_name=postgres_spec.name,
    )
    client.force_login(operator)
    response = client.post(reverse("database-test", args=[database.id]), follow=True)
    assert re.search(r"Connected: PostgreSQL \d+\.\d+", response.content.decode())


# --- members ------------------------------------------------------------------------------------


def test_an_admin_adds_a_member_changes_their_role_and_removes_them(client, owner, organisation):
    newcomer = factories.UserFactory(username="newcomer", email="new@example.com")
    client.force_login(owner)
    response = client.post(reverse("members"), {"user": "new@example.com", "role": "operator"})
    assert response.status_code == 302
    membership = Membership.objects.get(user=newcomer, organisation=organisation)
    assert membership.role == Role.OPERATOR
    client.post(reverse("member-role", args=[membership.id]), {f"{membership.pk}-role": "admin"})
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN
    client.post(reverse("member-remove", args=[membership.id]))
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_an_unknown_user_is_named_on_the_field(client, owner):
    client.force_login(owner)
    response = client.post(reverse("members"), {"user": "nobody", "role": "viewer"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_user_error_1"' in html and "nobody" in html
    described_ids_exist(html)


def test_the_last_admin_cannot_be_demoted_or_removed(client, owner, organisation):
    membership = Membership.objects.get(user=owner)
    client.force_login(owner)
    response = client.post(
        reverse("member-role", args=[membership.id]),
        {f"{membership.pk}-role": "viewer"},
        follow=True,
    )
    assert "at least one admin" in response.content.decode()
    client.post(reverse("member-remove", args=[membership.id]))
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN


def test_the_members_page_is_for_admins(client, operator, viewer):
    for user in (operator, viewer):
        client.force_login(user)
        assert client.get(reverse("members")).status_code == 403


# --- sizes ---------------------------------------------------------------------------------------


def test_the_dashboard_and_database_page_cost_the_same_queries_whatever_the_history(
    client, viewer, environment, database, django_assert_max_num_queries
):
    client.force_login(viewer)

    def add(n):
        now = timezone.now()
        Backup.objects.bulk_create(
            factories.BackupFactory.build(
                environment=environment,
                organisation=environment.project.organisation,
                database=database,
                created_at=now - timedelta(hours=i),
                status=BackupStatus.FAILED if i % 7 == 0 else BackupStatus.COMPLETED,
            )
            for i in range(n)
        )

    add(5)
    with django_assert_max_num_queries(40) as small:
        client.get(reverse("dashboard"))
        client.get(reverse("database-detail", args=[database.id]))
    add(2000)
    with django_assert_max_num_queries(len(small.captured_queries)) as large:
        client.get(reverse("dashboard"))
        response = client.get(reverse("database-detail", args=[database.id]))
    assert len(large.captured_queries) <= len(small.captured_queries)
    assert len(response.context["strip"]) == 30
    assert len(response.context["size_chart"].points) == 60


def test_next_runs_are_shown_in_the_schedules_time_zone(client, viewer, environment, database):
    factories.ScheduleFactory(environment=environment, db_cron="0 2 * * *", timezone="Asia/Tokyo")
    client.force_login(viewer)
    html = client.get(reverse("database-detail", args=[database.id])).content.decode()
    assert html.count(" 02:00</time>") == 5
    assert "Times in Asia/Tokyo" in html
