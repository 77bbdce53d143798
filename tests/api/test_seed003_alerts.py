"""Seed 003 backup alerts: list with include_dismissed and limit, count, dismiss, read."""

from datetime import timedelta

import pytest
from django.utils import timezone

from organizations.models import Role
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def alerts(organisation, environment):
    now = timezone.now()
    return [
        factories.AlertFactory(
            organisation=organisation,
            environment=environment,
            title=f"Alert {i}",
            last_seen_at=now - timedelta(minutes=i),
            **extra,
        )
        for i, extra in enumerate([{}, {"read_at": now}, {"dismissed_at": now}])
    ]


def test_it_lists_active_alerts_newest_first(client_for, organisation, alerts):
    factories.AlertFactory()  # another organisation's
    body = client_for(organisation, Role.VIEWER).get("/api/backup-alerts").json()
    assert [a["title"] for a in body["results"]] == ["Alert 0", "Alert 1"]
    assert body["count"] == 2 and body["limit"] == 50
    assert body["results"][1]["read"] is True


def test_include_dismissed_adds_dismissed_alerts(client_for, organisation, alerts):
    body = client_for(organisation).get("/api/backup-alerts", {"include_dismissed": "true"}).json()
    assert body["count"] == 3
    assert body["results"][2]["dismissed"] is True


def test_the_limit_defaults_to_50_and_is_clamped_to_100(client_for, organisation, alerts):
    client = client_for(organisation)
    assert client.get("/api/backup-alerts", {"limit": 1}).json()["results"][0]["title"] == "Alert 0"
    assert client.get("/api/backup-alerts", {"limit": 1000}).json()["limit"] == 100


@pytest.mark.parametrize(
    ("params", "field"),
    [({"include_dismissed": "maybe"}, "include_dismissed"), ({"limit": "x"}, "limit")],
)
def test_bad_alert_parameters_are_a_400_naming_them(client_for, organisation, params, field):
    response = client_for(organisation).get("/api/backup-alerts", params)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_the_count_is_of_unread_undismissed_alerts(client_for, organisation, alerts):
    response = client_for(organisation, Role.VIEWER).get("/api/backup-alerts/count")
    assert response.json() == {"count": 1}


def test_an_operator_dismisses_and_reads_alerts(client_for, organisation, alerts):
    client = client_for(organisation, Role.OPERATOR)
    read = client.post(f"/api/backup-alerts/{alerts[0].id}/read")
    assert read.status_code == 200 and read.json()["read"] is True
    assert client.get("/api/backup-alerts/count").json() == {"count": 0}
    dismissed = client.post(f"/api/backup-alerts/{alerts[0].id}/dismiss")
    assert dismissed.status_code == 200 and dismissed.json()["dismissed"] is True
    assert client.get("/api/backup-alerts").json()["count"] == 1


def test_a_viewer_cannot_dismiss(client_for, organisation, alerts):
    response = client_for(organisation, Role.VIEWER).post(
        f"/api/backup-alerts/{alerts[0].id}/dismiss"
    )
    assert response.status_code == 403


def test_another_organisations_alert_is_not_found(client_for, other_organisation, alerts):
    response = client_for(other_organisation).post(f"/api/backup-alerts/{alerts[0].id}/read")
    assert response.status_code == 404
