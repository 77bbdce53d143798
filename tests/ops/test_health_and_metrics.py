"""Liveness, readiness, Prometheus metrics and structured logs."""

import json
import logging

import pytest

from backups.models import BackupStatus
from config.logging import ContextFilter, JsonFormatter, log_context
from tests import factories

pytestmark = pytest.mark.django_db


def test_liveness_answers_ok(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_checks_the_database_broker_and_local_destination(client):
    response = client.get("/health/ready")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {
        "database": "ok",
        "broker": "ok",
        "localDestination": "ok",
    }


def test_readiness_fails_when_the_local_destination_is_not_writable(client, settings, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings.STRONGBOX_LOCAL_DESTINATION_ROOT = blocker / "artifacts"
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


def test_readiness_lists_destinations_whose_last_test_failed(client, organisation):
    factories.DestinationFactory(
        organisation=organisation, name="Flaky S3", last_check_error="connection refused"
    )
    body = client.get("/health/ready").json()
    assert body["destinationsFailing"][0]["name"] == "Flaky S3"


def test_metrics_count_backups_by_status_in_prometheus_format(client, environment):
    factories.BackupFactory(environment=environment, status=BackupStatus.COMPLETED, size=100)
    factories.BackupFactory(environment=environment, status=BackupStatus.FAILED)
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'strongbox_backups{status="completed"} 1' in text
    assert 'strongbox_backups{status="failed"} 1' in text
    assert "strongbox_backup_stored_bytes 100" in text
    assert "strongbox_queue_depth" in text


def test_metrics_can_require_a_token(client, settings):
    settings.STRONGBOX_METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200


def test_json_log_lines_carry_the_backup_id():
    record = logging.LogRecord("backups", logging.INFO, __file__, 1, "dump started", None, None)
    with log_context(backup_id="b-123", restore_id=None):
        ContextFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
    assert line["backup_id"] == "b-123"
    assert line["message"] == "dump started"
    assert "restore_id" not in line


def test_nul_characters_in_input_are_a_400_not_a_database_error(
    client_for, organisation, environment
):
    client = client_for(organisation, "admin")
    database = factories.DatabaseFactory(environment=environment)
    body = client.patch(
        f"/api/databases/{database.id}", {"options": {"a\u0000": "b"}}, format="json"
    )
    assert body.status_code == 400
    assert "NUL" in body.json()["error"]["message"]
    query = client.get("/v1/database-backups?name=x%00y")
    assert query.status_code == 400
