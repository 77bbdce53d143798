"""``manage.py backup_now`` names its target as the other commands do (id, slugs, name) and
says what is wrong in a sentence, never with a traceback."""

import io

import pytest
from django.core.management import CommandError, call_command

from backups.models import Backup
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_mains(organisation, other_organisation, environment, destination):
    """A database called "Main" in each organisation (same name, same slug)."""
    ours = factories.DatabaseFactory(environment=environment, name="Main", slug="main")
    other_env = factories.EnvironmentFactory(
        project=factories.ProjectFactory(organisation=other_organisation, slug="shop"),
        slug="production",
    )
    factories.DestinationFactory(organisation=other_organisation)
    theirs = factories.DatabaseFactory(environment=other_env, name="Main", slug="main")
    return ours, theirs


def _run(*args) -> str:
    out = io.StringIO()
    call_command("backup_now", *args, "--enqueue", stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    "reference", ["quant-gov/dashboard/staging/main", "{id}"], ids=["slugs", "id"]
)
def test_a_database_is_named_by_its_slugs_or_its_id(two_mains, reference):
    ours, theirs = two_mains

    output = _run("--database", reference.format(id=ours.id))

    (backup,) = Backup.objects.all()
    assert backup.database == ours and "enqueued" in output


def test_a_name_two_databases_share_is_refused_with_both_places(two_mains):
    with pytest.raises(CommandError, match="Several databases are called 'Main'") as refused:
        _run("--database", "Main")
    assert "quant-gov/dashboard/staging" in str(refused.value)
    assert "elsewhere/shop/production" in str(refused.value)
    assert not Backup.objects.exists()


@pytest.mark.parametrize("reference", ["nope", "not-a-uuid-1234", "a/b/c/d"])
def test_an_unknown_database_is_a_sentence(two_mains, reference):
    with pytest.raises(CommandError, match=f"No database '{reference}'"):
        _run("--database", reference)


def test_an_environment_is_named_by_project_and_environment_slugs(two_mains, environment):
    _run("--environment", "dashboard/staging")

    assert {b.environment for b in Backup.objects.all()} == {environment}
    with pytest.raises(CommandError, match="No environment 'dashboard/nowhere'"):
        _run("--environment", "dashboard/nowhere")
