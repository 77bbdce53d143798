"""Destination pages, through Django's test client."""

import pytest
from django.urls import reverse

from destinations.models import Destination
from tests import factories

pytestmark = pytest.mark.django_db


def test_a_viewer_lists_destinations_without_actions(client, viewer, destination):
    client.force_login(viewer)
    response = client.get(reverse("destinations-list"))
    html = response.content.decode()
    assert response.status_code == 200
    assert destination.name in html
    assert "Test connection" not in html and "Add a destination" not in html


def test_an_operator_tests_a_connection_and_sees_the_outcome(
    client, operator, destination, organisation_dir
):
    destination.config = {"path": str(organisation_dir)}
    destination.save()
    client.force_login(operator)
    response = client.post(reverse("destination-test", args=[destination.id]), follow=True)
    html = response.content.decode()
    assert "Wrote, read back and deleted a probe object" in html
    destination.refresh_from_db()
    assert destination.last_checked_at is not None and destination.last_check_error == ""


def test_a_failed_connection_test_is_reported(client, operator, destination, organisation_dir):
    blocker = organisation_dir / "file"
    blocker.write_text("not a directory")
    destination.config = {"path": str(blocker / "sub")}
    destination.save()
    client.force_login(operator)
    response = client.post(reverse("destination-test", args=[destination.id]), follow=True)
    assert "write failed" in response.content.decode()


def test_an_admin_creates_an_s3_destination_with_secrets_kept_secret(client, owner, organisation):
    client.force_login(owner)
    response = client.post(
        reverse("destination-new"),
        {
            "name": "Offsite",
            "kind": "s3",
            "s3__bucket": "backups",
            "s3__access_key_id": "AKIA",
            "s3__secret_access_key": "sekrit",
        },
    )
    assert response.status_code == 302
    destination = Destination.objects.get(name="Offsite")
    assert destination.config == {"bucket": "backups"}
    assert destination.secrets == {"access_key_id": "AKIA", "secret_access_key": "sekrit"}
    edit = client.get(reverse("destination-edit", args=[destination.id])).content.decode()
    assert "sekrit" not in edit and "AKIA" not in edit


def test_missing_parameters_are_shown_next_to_their_fields(client, owner, organisation):
    client.force_login(owner)
    response = client.post(reverse("destination-new"), {"name": "Offsite", "kind": "s3"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_s3__bucket_error_1"' in html
    assert 'id="id_s3__access_key_id_error_1"' in html


def test_editing_keeps_secrets_left_blank(client, owner, organisation):
    destination = factories.DestinationFactory(
        organisation=organisation,
        kind="s3",
        config={"bucket": "bucket-a"},
        secrets={"access_key_id": "AKIA", "secret_access_key": "sekrit"},
    )
    client.force_login(owner)
    response = client.post(
        reverse("destination-edit", args=[destination.id]),
        {"name": "Renamed", "s3__bucket": "bucket-b"},
    )
    assert response.status_code == 302
    destination.refresh_from_db()
    assert (destination.name, destination.config["bucket"]) == ("Renamed", "bucket-b")
    assert destination.secrets["secret_access_key"] == "sekrit"


def test_operators_cannot_manage_destinations(client, operator, destination):
    client.force_login(operator)
    assert client.get(reverse("destination-new")).status_code == 403
    assert client.post(reverse("destination-delete", args=[destination.id])).status_code == 403


def test_another_organisations_destination_is_not_found(client, outsider, destination):
    client.force_login(outsider)
    assert client.post(reverse("destination-test", args=[destination.id])).status_code == 404
    assert client.get(reverse("destination-edit", args=[destination.id])).status_code == 404
