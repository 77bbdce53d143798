"""Restore form, restore logs and undo, through Django's test client."""

import pytest
from django.urls import reverse

from backups.models import BackupStatus
from restores.models import Restore, RestoreStatus
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def backup(environment, destination):
    database = factories.DatabaseFactory(
        environment=environment, name="Orders", slug="orders", engine="sqlite"
    )
    backup = factories.BackupFactory(
        environment=environment, database=database, engine="sqlite", engine_version="3.40.1"
    )
    factories.BackupCopyFactory(backup=backup, destination=destination)
    return backup


def test_the_backup_page_offers_restore_to_operators(client, operator, backup):
    client.force_login(operator)
    html = client.get(reverse("backup-detail", args=[backup.id])).content.decode()
    assert reverse("restore-new", args=[backup.id]) in html


def test_a_restore_needs_confirmation(client, operator, backup, environment):
    client.force_login(operator)
    response = client.post(
        reverse("restore-new", args=[backup.id]), {"target_environment": str(environment.id)}
    )
    assert response.status_code == 400
    assert 'id="id_confirm_error_1"' in response.content.decode()
    assert not Restore.objects.exists()


def test_an_operator_starts_a_restore_and_lands_on_its_log(client, operator, backup, environment):
    client.force_login(operator)
    response = client.post(
        reverse("restore-new", args=[backup.id]),
        {
            "target_environment": str(environment.id),
            "take_safety_backup": "on",
            "confirm": "on",
            "confirm_name": "Orders",
        },
    )
    restore = Restore.objects.get()
    assert response["Location"] == reverse("restore-detail", args=[restore.id])
    assert (restore.target_type, restore.take_safety_backup) == ("same", True)
    log = client.get(response["Location"]).content.decode()
    assert f'data-progress-url="/api/restores/{restore.id}/progress"' in log


def test_a_service_refusal_is_shown_on_the_form(client, operator, backup, environment):
    factories.RestoreFactory(backup=backup, status=RestoreStatus.IN_PROGRESS)
    client.force_login(operator)
    response = client.post(
        reverse("restore-new", args=[backup.id]),
        {"target_environment": str(environment.id), "confirm": "on", "confirm_name": "Orders"},
    )
    assert response.status_code == 400
    assert "already running" in response.content.decode()


def test_viewers_cannot_restore_and_outsiders_do_not_find_it(client, viewer, outsider, backup):
    client.force_login(viewer)
    assert client.get(reverse("restore-new", args=[backup.id])).status_code == 403
    restore = factories.RestoreFactory(backup=backup)
    assert client.get(reverse("restore-detail", args=[restore.id])).status_code == 200
    client.force_login(outsider)
    assert client.get(reverse("restore-new", args=[backup.id])).status_code == 404
    assert client.get(reverse("restore-detail", args=[restore.id])).status_code == 404
    assert client.post(reverse("restore-undo", args=[restore.id])).status_code == 404


def test_a_completed_restore_with_a_safety_backup_can_be_undone(
    client, operator, backup, environment, destination
):
    safety = factories.BackupFactory(
        environment=environment,
        database=backup.database,
        engine="sqlite",
        engine_version="3.40.1",
        trigger="safety",
    )
    factories.BackupCopyFactory(backup=safety, destination=destination)
    restore = factories.RestoreFactory(
        backup=backup, status=RestoreStatus.COMPLETED, safety_backup=safety
    )
    client.force_login(operator)
    html = client.get(reverse("restore-detail", args=[restore.id])).content.decode()
    assert "Undo this restore" in html
    response = client.post(reverse("restore-undo", args=[restore.id]))
    undo = Restore.objects.get(undoes=restore)
    assert undo.backup == safety
    assert response["Location"] == reverse("restore-detail", args=[undo.id])


def test_the_restore_list_shows_the_organisations_restores(client, viewer, backup):
    factories.RestoreFactory(backup=backup, status=RestoreStatus.FAILED)
    client.force_login(viewer)
    response = client.get(reverse("restores-list"))
    assert len(response.context["page"].object_list) == 1
    assert backup.status == BackupStatus.COMPLETED


def test_the_restore_form_shows_what_a_restore_replaces_before_it_starts(
    client, operator, backup, project
):
    production = factories.EnvironmentFactory(project=project, name="Production")
    analytics = factories.DatabaseFactory(
        environment=production, name="Analytics", engine="sqlite", version="3.40.1"
    )
    factories.DatabaseFactory(environment=production, name="Warehouse", engine="postgresql")
    client.force_login(operator)
    url = reverse("restore-new", args=[backup.id])

    page = client.get(url).content.decode()
    preview = client.post(
        url,
        {
            "target_environment": str(production.id),
            "target_database": str(analytics.id),
            "preview": "1",
        },
    )
    assert not Restore.objects.exists()
    started = client.post(
        url,
        {
            "target_environment": str(production.id),
            "target_database": str(analytics.id),
            "confirm": "on",
            "confirm_name": "Analytics",
        },
    )

    assert "the database <strong>Orders</strong>" in page  # its own database, in place
    assert "replaces its current data in place" in page
    assert preview.status_code == 200
    html = preview.content.decode()
    assert "the database <strong>Analytics</strong>" in html
    assert "Orders goes into Analytics, a database with another name." in html
    assert "Warehouse" not in html  # another engine family is not offered
    restore = Restore.objects.get()
    assert started["Location"] == reverse("restore-detail", args=[restore.id])
    assert restore.target_database == analytics
    assert restore.members[0]["target"]["name"] == "Analytics"


def test_an_in_place_restore_asks_for_the_databases_name_typed(
    client, operator, backup, environment
):
    client.force_login(operator)
    url = reverse("restore-new", args=[backup.id])
    form = {"target_environment": str(environment.id), "confirm": "on"}

    page = client.get(url).content.decode()
    untyped = client.post(url, form)
    mistyped = client.post(url, {**form, "confirm_name": "orders"})
    typed = client.post(url, {**form, "confirm_name": " Orders "})

    assert "This restore replaces <strong>Orders</strong> in the backup" in page
    for refused in (untyped, mistyped):
        assert refused.status_code == 400
        html = refused.content.decode()
        assert 'id="id_confirm_name_error_1"' in html
        assert "Type “Orders” to confirm: this restore replaces it in the backup" in html
    assert typed.status_code == 302
    assert Restore.objects.count() == 1


def test_a_restore_into_a_database_of_the_same_name_elsewhere_needs_no_typing(
    client, operator, backup, project
):
    staging = factories.EnvironmentFactory(project=project, name="Staging 2", slug="staging-2")
    factories.DatabaseFactory(environment=staging, name="Orders", slug="orders", engine="sqlite")
    client.force_login(operator)

    response = client.post(
        reverse("restore-new", args=[backup.id]),
        {"target_environment": str(staging.id), "confirm": "on"},
    )

    assert response.status_code == 302, response.content.decode()[-2000:]
    assert Restore.objects.get().target_environment == staging
