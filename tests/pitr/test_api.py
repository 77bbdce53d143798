"""GET /api/environments/{env_id}/pitr: seed 003's PITR coverage."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from organizations.models import Role
from tests.pitr.conftest import recorded_history

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def covered(environment):
    """A PostgreSQL database with a base backup and three archived segments after it."""
    return recorded_history(environment, start=T0)


def test_it_shows_the_coverage_window_and_the_base_backups(
    client_for, organisation, environment, covered
):
    response = client_for(organisation, Role.VIEWER).get(f"/api/environments/{environment.id}/pitr")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["walEnabled"] is True and body["walRetentionDays"] == 7
    assert body["earliestRecoverableTime"] == "2026-11-01T00:00:01Z"
    assert body["latestRecoverableTime"] == "2026-11-01T04:00:00Z"
    assert [b["id"] for b in body["baseBackups"]] == [str(covered.id)]
    database = body["databases"][0]
    assert database["gaps"] == []
    assert set(database["archiving"]) >= {"status", "lastArchivedWal", "lagSeconds", "lastError"}


def test_another_organisations_environment_is_not_found(
    client_for, other_organisation, environment, covered
):
    response = client_for(other_organisation).get(f"/api/environments/{environment.id}/pitr")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
