"""Shared fixtures: an organisation with an owner (admin), an operator, a viewer,
and an outsider who belongs to another organisation."""

import pytest
from rest_framework.test import APIClient

from organizations.models import Role
from organizations.services import api_token_create
from tests import factories

pytest_plugins = [
    "tests.fixtures.tenants",
    "tests.fixtures.databases",
    "tests.fixtures.s3",
    "tests.fixtures.worker",
    "tests.fixtures.queue",
    "tests.fixtures.oidc",
]


@pytest.fixture(autouse=True)
def _isolated_var_dir(settings, tmp_path):
    """Artifacts and scratch files of each test go to its own directory."""
    settings.STRONGBOX_LOCAL_DESTINATION_ROOT = tmp_path / "artifacts"
    settings.STRONGBOX_TMP_DIR = tmp_path / "tmp"
    settings.STRONGBOX_WAL_SPOOL_DIR = tmp_path / "wal-spool"
    settings.STRONGBOX_SECRETS_KEY_FILE = str(tmp_path / "secrets.key")


@pytest.fixture
def organisation(db):
    return factories.OrganisationFactory(name="Quant Gov", slug="quant-gov")


@pytest.fixture
def other_organisation(db):
    return factories.OrganisationFactory(name="Elsewhere", slug="elsewhere")


def _member(organisation, role, username):
    user = factories.UserFactory(username=username)
    factories.MembershipFactory(user=user, organisation=organisation, role=role)
    return user


@pytest.fixture
def owner(organisation):
    return _member(organisation, Role.ADMIN, "owner")


@pytest.fixture
def operator(organisation):
    return _member(organisation, Role.OPERATOR, "operator")


@pytest.fixture
def viewer(organisation):
    return _member(organisation, Role.VIEWER, "viewer")


@pytest.fixture
def outsider(other_organisation):
    return _member(other_organisation, Role.ADMIN, "outsider")


@pytest.fixture
def project(organisation):
    return factories.ProjectFactory(organisation=organisation, name="Dashboard", slug="dashboard")


@pytest.fixture
def environment(project):
    return factories.EnvironmentFactory(project=project, name="Staging", slug="staging")


@pytest.fixture
def destination(organisation):
    return factories.DestinationFactory(organisation=organisation, name="Local disk")


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def token_for():
    """token_for(organisation, role) -> a raw API token with that role."""

    def make(organisation, role=Role.ADMIN):
        _, raw = api_token_create(organisation=organisation, name=f"{role} token", role=role)
        return raw

    return make


@pytest.fixture
def client_for(token_for):
    """client_for(organisation, role) -> an APIClient authenticated with a token."""

    def make(organisation, role=Role.ADMIN):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(organisation, role)}")
        return client

    return make
