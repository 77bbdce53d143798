"""S3 parameters are checked when a destination is saved (API create and update, the
form, the admin), so a value that could never work is a 400 naming it, not a backup that
fails later. Valid values are then used against moto's S3 server on loopback."""

import json

import pytest
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator

from destinations.models import Destination
from organizations.services import host_policy_set
from tests import factories
from tests.fixtures.s3 import ACCESS_KEY, SECRET_KEY

pytestmark = pytest.mark.django_db

BAD_VALUES = [
    ("part_size_mb", "lots"),
    ("part_size_mb", "4"),
    ("part_size_mb", "5121"),
    ("part_size_mb", "-16"),
    ("part_size_mb", "16.5"),
    ("endpoint_url", "file:///etc/passwd"),
    ("endpoint_url", "http://"),
    ("endpoint_url", "ftp://store.example.com"),
    ("endpoint_url", "https://store.example.com:99999"),
    ("bucket", "../other"),
    ("bucket", "a/b"),
    ("bucket", "x"),
    ("region", "eu-west-1.evil.example/"),
    ("region", "eu west"),
]


def _parameters(**overrides):
    return {
        "bucket": "backups",
        "region": "us-east-1",
        "endpoint_url": "https://s3.example.com",
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        **overrides,
    }


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_the_api_refuses_a_bad_s3_parameter_on_create_naming_it(
    client_for, organisation, name, value
):
    response = client_for(organisation).post(
        "/api/backup-destinations",
        {"name": "Offsite", "kind": "s3", "parameters": _parameters(**{name: value})},
        format="json",
    )
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert list(error["fields"]) == [f"parameters.{name}"]
    assert name in error["message"]
    assert not Destination.objects.filter(name="Offsite").exists()


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_the_api_refuses_a_bad_s3_parameter_on_update_and_keeps_the_old_one(
    client_for, organisation, name, value
):
    destination = factories.DestinationFactory(
        organisation=organisation, kind="s3", config=_parameters(), secrets={}
    )
    destination.config = {k: v for k, v in _parameters().items() if "key" not in k}
    destination.secrets = {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}
    destination.save()
    response = client_for(organisation).patch(
        f"/api/backup-destinations/{destination.id}", {"parameters": {name: value}}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert list(response.json()["error"]["fields"]) == [f"parameters.{name}"]
    destination.refresh_from_db()
    assert destination.config.get(name) == _parameters().get(name)


@pytest.mark.parametrize("part_size", ["5", "16", "5120", 64])
def test_the_api_takes_part_sizes_in_s3s_range(client_for, organisation, part_size):
    response = client_for(organisation).post(
        "/api/backup-destinations",
        {"name": "Offsite", "kind": "s3", "parameters": _parameters(part_size_mb=part_size)},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert Destination.objects.get(name="Offsite").config["part_size_mb"] == str(part_size)


def test_the_schema_gives_the_part_size_range_and_the_required_parameters():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    body = components["DestinationCreateRequest"]
    assert body["discriminator"]["propertyName"] == "kind"
    s3 = components["S3DestinationParametersRequest"]
    assert set(s3["required"]) == {"bucket", "access_key_id", "secret_access_key"}
    assert s3["additionalProperties"] is False
    part_size = s3["properties"]["part_size_mb"]
    assert {"type": "integer", "minimum": 5, "maximum": 5120} in part_size["oneOf"]
    assert "an integer from 5 to 5120" in part_size["description"]


@pytest.mark.s3
def test_a_destination_with_a_valid_part_size_passes_the_connection_test(
    client_for, organisation, s3_server, s3_bucket
):
    host_policy_set(organisation=organisation, allowed_hosts=["127.0.0.0/8"])
    client = client_for(organisation)
    created = client.post(
        "/api/backup-destinations",
        {
            "name": "Moto",
            "kind": "s3",
            "parameters": _parameters(
                bucket=s3_bucket, endpoint_url=s3_server.endpoint, part_size_mb="5"
            ),
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    result = client.post(f"/api/backup-destinations/{created.json()['id']}/test").json()
    assert result["ok"] is True, result


# --- the destination form ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_the_form_shows_a_bad_s3_parameter_next_to_its_field(
    client, owner, organisation, name, value
):
    client.force_login(owner)
    form = {"name": "Offsite", "kind": "s3"}
    form |= {f"s3__{key}": text for key, text in _parameters(**{name: value}).items()}
    response = client.post(reverse("destination-new"), form)
    assert response.status_code == 400
    assert f'id="id_s3__{name}_error_1"' in response.content.decode()
    assert not Destination.objects.filter(name="Offsite").exists()


# --- the admin ---------------------------------------------------------------------------


@pytest.fixture
def root(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    return client


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_the_admin_refuses_a_bad_s3_parameter(root, organisation, name, value):
    config = {k: v for k, v in _parameters(**{name: value}).items() if "key" not in k}
    response = root.post(
        "/admin/destinations/destination/add/",
        {
            "organisation": organisation.pk,
            "name": "Offsite",
            "kind": "s3",
            "config": json.dumps(config),
            "secrets_input": json.dumps(
                {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}
            ),
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert any(name in error for error in errors), errors
    assert not Destination.objects.filter(name="Offsite").exists()
