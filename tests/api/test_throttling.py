"""Request rates: anonymous callers per address, users and API tokens each on their own,
failed bearer authentications per address; 429 with Retry-After in each dialect's error
body; health, metrics and progress streams left alone; X-Forwarded-For only behind proxies.

The suite's own rates are too high to reach (config/settings/test.py); each test here
lowers them and counts in a cache namespace of its own, so no other test's requests (or an
earlier run's, in Redis) count.
"""

import uuid

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from rest_framework.test import APIClient

from config.env import env_rate
from organizations.models import Role
from tests import factories

HIGH = "100000/min"


@pytest.fixture
def rates(settings):
    """rates(anon=…, user=…, bad_token=…, proxies=…): the throttle settings of this test."""
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"throttle-test-{uuid.uuid4()}"}
    }

    def set_rates(*, anon=HIGH, user=HIGH, bad_token=HIGH, proxies=0):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"anon": anon, "user": user, "bad_token": bad_token},
            "NUM_PROXIES": proxies,
        }

    return set_rates


def _bearer(raw: str, address: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _assert_throttled(response):
    assert response.status_code == 429, response.content
    assert 0 < int(response["Retry-After"]) <= 3600


@pytest.mark.django_db
def test_anonymous_requests_over_the_rate_get_429_with_retry_after(rates):
    rates(anon="3/min")
    client = APIClient()
    for _ in range(3):
        assert client.post("/api/auth/token", {}, format="json").status_code == 400
    response = client.post("/api/auth/token", {}, format="json")
    _assert_throttled(response)
    assert response.json()["error"]["code"] == "throttled"
    assert "Expected available in" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_another_address_is_not_throttled_by_the_first_ones_requests(rates):
    rates(anon="2/min")
    for _ in range(3):
        APIClient().post("/api/auth/token", {}, format="json")
    assert APIClient().post("/api/auth/token", {}, format="json").status_code == 429
    other = APIClient(REMOTE_ADDR="10.1.2.3")
    assert other.post("/api/auth/token", {}, format="json").status_code == 400


@pytest.mark.django_db
def test_each_api_token_and_each_user_has_its_own_rate(rates, organisation, owner, token_for):
    rates(user="2/min")
    first, second = token_for(organisation), token_for(organisation, Role.VIEWER)
    for _ in range(2):
        assert _bearer(first).get("/api/projects").status_code == 200
    _assert_throttled(_bearer(first).get("/api/projects"))
    # Before, every API token's stand-in user had pk None: one bucket for all tokens.
    assert _bearer(second).get("/api/projects").status_code == 200
    session = APIClient()
    session.force_login(owner)
    assert session.get("/api/projects").status_code == 200


@pytest.mark.django_db
def test_bad_bearer_tokens_are_throttled_per_address(rates, organisation, token_for):
    rates(bad_token="3/hour")
    good = token_for(organisation)
    for bad in ("sbx_not-a-token", "not.a.jwt", "sbx_guess"):
        assert _bearer(bad).get("/api/projects").status_code == 401
    # Now every bearer request from this address is refused before its token is looked at,
    # so a guess that happens to be right tells the guesser nothing.
    response = _bearer(good).get("/api/projects")
    _assert_throttled(response)
    assert response.json()["error"]["code"] == "throttled"
    assert _bearer(good, address="10.9.9.9").get("/api/projects").status_code == 200


@pytest.mark.django_db
def test_good_tokens_do_not_count_as_bad_ones(rates, organisation, token_for):
    rates(bad_token="2/hour")
    good = token_for(organisation)
    for _ in range(5):
        assert _bearer(good).get("/api/projects").status_code == 200
    assert _bearer("sbx_nope").get("/api/projects").status_code == 401
    assert _bearer(good).get("/api/projects").status_code == 200


@pytest.mark.django_db
def test_a_blank_authorization_header_is_no_credentials_not_an_error(rates):
    rates()
    response = APIClient().get("/api/projects", HTTP_AUTHORIZATION="   ")
    assert response.status_code == 401


@pytest.mark.django_db
def test_the_429_is_in_each_dialects_error_body(rates, organisation, environment, token_for):
    project = environment.project
    database = factories.DatabaseFactory(environment=environment)
    destination = factories.DestinationFactory(organisation=organisation)
    rates(bad_token="1/hour")
    assert _bearer("sbx_wrong").get("/api/projects").status_code == 401
    good = _bearer(token_for(organisation))

    seed000 = good.get(
        f"/api/v3/organizations/{organisation.id}/applications/{project.id}"
        f"/environments/{environment.id}/backups/database"
    )
    _assert_throttled(seed000)
    assert list(seed000.json()) == ["error"] and isinstance(seed000.json()["error"], str)

    seed002 = good.get("/v1/database-backups")
    _assert_throttled(seed002)
    assert seed002.json() == {
        "error": {"code": "throttled", "message": seed002.json()["error"]["message"]}
    }

    for path in (
        "/api/projects",  # Strongbox's own resources and seed 003
        f"/v1/backup-destinations/{destination.id}/backups",  # seed 001
        f"/database/{database.id}/backup",  # seed 004
    ):
        response = good.get(path)
        _assert_throttled(response)
        assert set(response.json()["error"]) == {"code", "message"}
        assert response.json()["error"]["code"] == "throttled"


@pytest.mark.django_db
def test_health_and_metrics_are_never_throttled(rates, settings):
    rates(anon="1/min", user="1/min")
    settings.STRONGBOX_METRICS_TOKEN = ""
    client = APIClient()
    for _ in range(5):
        assert client.get("/health/live").status_code == 200
        assert client.get("/metrics").status_code == 200


async def _open_stream(url: str, token: str):
    response = await AsyncClient().get(url, headers={"Authorization": f"Bearer {token}"})
    body = b""
    if response.streaming:
        async for chunk in response.streaming_content:
            body += chunk
    return response, body


@pytest.mark.django_db(transaction=True)
def test_progress_streams_open_when_the_callers_request_rate_is_spent(
    rates, organisation, environment, token_for
):
    rates(user="1/min")
    backup = factories.BackupFactory(environment=environment)
    token = token_for(organisation)
    assert _bearer(token).get("/api/projects").status_code == 200
    assert _bearer(token).get("/api/projects").status_code == 429
    for _ in range(3):
        response, body = async_to_sync(_open_stream)(f"/api/backups/{backup.id}/progress", token)
        assert response.status_code == 200
        assert b"event: done" in body


@pytest.mark.django_db
def test_x_forwarded_for_is_ignored_without_trusted_proxies(rates):
    rates(anon="2/min")
    for n in range(2):
        APIClient(HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").post("/api/auth/token", {}, format="json")
    spoofed = APIClient(HTTP_X_FORWARDED_FOR="203.0.113.99")
    assert spoofed.post("/api/auth/token", {}, format="json").status_code == 429


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_address_it_adds_is_the_client(rates):
    rates(anon="2/min", proxies=1)

    def through_proxy(client_address, claimed="198.51.100.7"):
        # What the client claims comes first; the proxy appends the address it saw.
        client = APIClient(HTTP_X_FORWARDED_FOR=f"{claimed}, {client_address}")
        return client.post("/api/auth/token", {}, format="json")

    for _ in range(2):
        assert through_proxy("203.0.113.5").status_code == 400
    assert through_proxy("203.0.113.5", claimed="192.0.2.1").status_code == 429
    assert through_proxy("203.0.113.6").status_code == 400
    # A proxy that sends something else than an address: the proxy's own address counts.
    assert through_proxy("not-an-address").status_code == 400


@pytest.mark.django_db
def test_the_schema_documents_the_429_of_every_operation_in_its_dialects_body(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert len(operations) > 40
    for operation in operations:
        responses = operation["responses"]
        assert "Retry-After" in responses["429"]["headers"], operation["operationId"]
        assert responses["429"]["content"] == {
            media: {"schema": body["schema"]} for media, body in responses["401"]["content"].items()
        }


@pytest.mark.parametrize("rate", ["600/min", "1000/hour", "5/s", "1/day", "10/minute"])
def test_a_rate_from_the_environment_is_read_as_given(monkeypatch, rate):
    monkeypatch.setenv("STRONGBOX_API_RATE_USER", rate)
    assert env_rate("STRONGBOX_API_RATE_USER", "3000/min") == rate


@pytest.mark.parametrize("rate", ["lots", "600", "600/fortnight", "-1/min", "1.5/min"])
def test_a_malformed_rate_stops_the_settings_with_its_name(monkeypatch, rate):
    monkeypatch.setenv("STRONGBOX_API_RATE_USER", rate)
    with pytest.raises(ValueError, match="STRONGBOX_API_RATE_USER must be a rate"):
        env_rate("STRONGBOX_API_RATE_USER", "3000/min")
