"""Time zones are names of the IANA database, and crons have a length bound, for every
writer: the seed 003 API, the schedule form, the admin, and the endpoints that take a
timezone to compute with."""

import pytest
from croniter import croniter
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator

from organizations.models import Role
from schedules import timing
from schedules.models import Schedule
from tests import factories

pytestmark = pytest.mark.django_db

# ZoneInfo() loads each of these from the system's zoneinfo directory; none is a zone name.
NOT_ZONE_NAMES = ["posixrules", "Factory", "right/UTC", "posix/Europe/London", "localtime"]
# Every even minute of every hour: a cron croniter takes, but 152 characters long.
TOO_LONG_CRON = ",".join(map(str, range(0, 60, 2))) + " " + ",".join(map(str, range(24))) + " * * *"


def test_the_long_cron_of_these_tests_is_otherwise_valid():
    assert len(TOO_LONG_CRON) > timing.CRON_MAX_LENGTH
    assert croniter.is_valid(TOO_LONG_CRON)


@pytest.mark.parametrize("name", NOT_ZONE_NAMES)
def test_timing_refuses_files_of_the_zoneinfo_directory_that_are_no_zone_names(name):
    with pytest.raises(timing.ScheduleError) as caught:
        timing.validate_timezone(name)
    assert caught.value.field == "timezone"


def test_timing_takes_every_name_the_form_offers():
    assert {"UTC", "Europe/London", "America/Argentina/Buenos_Aires"} <= (
        timing.iana_timezone_names()
    )
    assert not set(NOT_ZONE_NAMES) & timing.iana_timezone_names()


def test_a_cron_over_the_bound_is_refused_naming_its_field():
    with pytest.raises(timing.ScheduleError) as caught:
        timing.validate_cron(TOO_LONG_CRON, field="db_cron", max_length=timing.CRON_MAX_LENGTH)
    assert caught.value.field == "db_cron"
    assert "at most 100 characters" in caught.value.message
    # Crons built from interval rules (every minute of an hour) are longer, and still run.
    assert timing.validate_cron(TOO_LONG_CRON) == TOO_LONG_CRON


# --- seed 003 API ----------------------------------------------------------------------


@pytest.fixture
def schedule_url(environment):
    return f"/api/environments/{environment.id}/backup-schedule"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        *[({"timezone": name}, "timezone") for name in NOT_ZONE_NAMES],
        ({"dbCron": TOO_LONG_CRON}, "dbCron"),
        ({"fullCron": TOO_LONG_CRON, "fullFrequency": "custom"}, "fullCron"),
    ],
)
def test_the_api_refuses_a_non_iana_zone_or_an_overlong_cron_naming_the_field(
    client_for, organisation, environment, schedule_url, body, field
):
    response = client_for(organisation).put(schedule_url, body, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert list(error["fields"]) == [field]
    assert not Schedule.objects.filter(environment=environment).exists()


def test_the_api_refuses_a_non_iana_zone_on_an_existing_schedule(
    client_for, organisation, environment, schedule_url
):
    factories.ScheduleFactory(environment=environment, timezone="Europe/Paris")
    response = client_for(organisation).put(schedule_url, {"timezone": "localtime"}, format="json")
    assert response.status_code == 400
    assert "timezone" in response.json()["error"]["fields"]
    assert Schedule.objects.get(environment=environment).timezone == "Europe/Paris"


@pytest.mark.parametrize("name", NOT_ZONE_NAMES)
def test_the_retention_preview_refuses_a_non_iana_zone(
    client_for, organisation, environment, schedule_url, name
):
    factories.ScheduleFactory(environment=environment)
    response = client_for(organisation).post(
        f"{schedule_url}/retention-preview", {"timezone": name}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert "timezone" in response.json()["error"]["fields"]


@pytest.mark.parametrize("name", NOT_ZONE_NAMES)
def test_the_cron_presets_refuse_a_non_iana_zone(client_for, organisation, name):
    response = client_for(organisation, Role.VIEWER).get(
        "/api/backups/cron-presets", {"timezone": name}
    )
    assert response.status_code == 400
    assert "timezone" in response.json()["error"]["fields"]


# --- the schedule form -----------------------------------------------------------------


def _post_form(client, environment, **overrides):
    data = {"enabled": "on", "timezone": "Europe/London", "db_frequency": "daily", **overrides}
    return client.post(reverse("schedule-edit", args=[environment.id]), data)


@pytest.mark.parametrize("name", NOT_ZONE_NAMES)
def test_the_form_neither_offers_nor_takes_a_non_iana_zone(client, owner, environment, name):
    client.force_login(owner)
    page = client.get(reverse("schedule-edit", args=[environment.id])).content.decode()
    assert f'value="{name}"' not in page
    assert 'value="Europe/London"' in page

    response = _post_form(client, environment, timezone=name)
    assert response.status_code == 400
    assert 'id="id_timezone_error_1"' in response.content.decode()
    assert not Schedule.objects.exists()


def test_the_form_refuses_an_overlong_cron_naming_the_field(client, owner, environment):
    client.force_login(owner)
    response = _post_form(client, environment, db_frequency="custom", db_cron=TOO_LONG_CRON)
    assert response.status_code == 400
    assert 'id="id_db_cron_error_1"' in response.content.decode()
    assert not Schedule.objects.exists()


# --- the admin -------------------------------------------------------------------------


@pytest.fixture
def root(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    return client


def _admin_form(environment, **overrides):
    return {
        "environment": environment.pk,
        "timezone": "Europe/London",
        "db_cron": "0 2 * * *",
        "enabled": "on",
        "retention_floor": "1",
        "interval_rules-TOTAL_FORMS": "0",
        "interval_rules-INITIAL_FORMS": "0",
        **overrides,
    }


def test_the_admin_saves_a_schedule_in_an_iana_zone(root, environment):
    response = root.post("/admin/schedules/schedule/add/", _admin_form(environment))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Schedule.objects.get(environment=environment).timezone == "Europe/London"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        *[({"timezone": name}, "timezone") for name in NOT_ZONE_NAMES],
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"db_cron": "every day"}, "db_cron"),
        ({"full_cron": "61 * * * *"}, "full_cron"),
    ],
)
def test_the_admin_refuses_a_non_iana_zone_or_a_bad_cron(root, environment, overrides, field):
    response = root.post("/admin/schedules/schedule/add/", _admin_form(environment, **overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field], errors
    assert not Schedule.objects.exists()


def test_the_schema_gives_the_cron_bound():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    body = schema["components"]["schemas"]["Seed003ScheduleInputRequest"]["properties"]
    assert body["dbCron"]["maxLength"] == body["fullCron"]["maxLength"] == timing.CRON_MAX_LENGTH
