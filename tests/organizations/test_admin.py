"""The admin writes projects, environments and databases through the services."""

import pytest

from organizations.models import Database, Environment
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def test_the_admin_refuses_a_files_directory_outside_the_organisations_roots(
    root, project, organisation_dir
):
    url = "/admin/organizations/environment/add/"
    form = {"project": project.pk, "name": "Prod", "slug": "prod"}
    refused = root.post(url, {**form, "files_path": "/etc"})
    assert refused.status_code == 200
    assert "outside the directories Quant Gov may use" in refused.content.decode()
    assert not Environment.objects.filter(slug="prod").exists()

    accepted = root.post(url, {**form, "files_path": str(organisation_dir)})
    assert accepted.status_code == 302
    assert Environment.objects.get(slug="prod").files_path == str(organisation_dir)


def test_the_admin_creates_a_database_with_an_encrypted_password(root, environment):
    response = root.post(
        "/admin/organizations/database/add/",
        {
            "environment": environment.pk,
            "name": "Orders",
            "slug": "orders",
            "engine": "postgresql",
            "password": "s3cret",
            "database_name": "orders",
            "options": "{}",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Database.objects.get(slug="orders").password == "s3cret"


def test_the_admin_does_not_delete_an_environment_that_still_has_backups(root, environment):
    factories.BackupFactory(environment=environment)
    response = root.post(
        f"/admin/organizations/environment/{environment.pk}/delete/", {"post": "yes"}, follow=True
    )
    assert "still has 1 backup" in response.content.decode()
    assert Environment.objects.filter(pk=environment.pk).exists()
    listing = root.get("/admin/organizations/environment/")
    assert b"delete_selected" not in listing.content


def test_the_admin_renames_a_project_and_refuses_a_siblings_slug(root, organisation, project):
    factories.ProjectFactory(organisation=organisation, slug="taken")
    url = f"/admin/organizations/project/{project.pk}/change/"
    form = {"organisation": organisation.pk, "name": "Console"}
    assert root.post(url, {**form, "slug": "taken"}).status_code == 200
    assert root.post(url, {**form, "slug": "console"}).status_code == 302
    project.refresh_from_db()
    assert (project.name, project.slug) == ("Console", "console")


def test_the_admin_does_not_move_an_environment_to_another_organisation(
    root, environment, other_organisation
):
    elsewhere = factories.ProjectFactory(organisation=other_organisation)
    page = root.get(f"/admin/organizations/environment/{environment.pk}/change/")
    assert b'name="project"' not in page.content  # shown, not editable
    response = root.post(
        f"/admin/organizations/environment/{environment.pk}/change/",
        {"project": elsewhere.pk, "name": "Renamed", "slug": environment.slug, "files_path": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    environment.refresh_from_db()
    assert (environment.name, environment.project_id) == ("Renamed", environment.project.pk)
    assert environment.project.organisation != other_organisation


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_the_admin_creates_a_database_with_a_blank_password(
    root, environment, organisation_dir, engine
):
    # SQLite needs none, and neither does a server with trust authentication.
    database_name = str(organisation_dir / "local.sqlite3") if engine == "sqlite" else "local"
    response = root.post(
        "/admin/organizations/database/add/",
        {
            "environment": environment.pk,
            "name": "Local",
            "slug": "local",
            "engine": engine,
            "host": "" if engine == "sqlite" else "127.0.0.1",
            "password": "",
            "database_name": database_name,
            "options": "{}",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Database.objects.get(slug="local").password == ""
