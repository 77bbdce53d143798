"""GET /api/environments/{env_id}/pitr: seed 003's PITR coverage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backups.engines import postgresql_physical as physical
from backups.models import BackupKind, BackupMethod, BaseBackupPosition, WalSegment
from organizations.models import Role
from tests import factories

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def covered(environment):
    """A PostgreSQL database with a base backup and three archived segments after it."""
    database = factories.DatabaseFactory(
        environment=environment, name="Orders", slug="orders", engine="postgresql"
    )
    factories.ScheduleFactory(environment=environment, wal_enabled=True, wal_retention_days=7)
    base = factories.BackupFactory(
        environment=environment,
        database=database,
        kind=BackupKind.BASE,
        method=BackupMethod.PHYSICAL,
        completed_at=T0,
    )
    BaseBackupPosition.objects.create(
        backup=base,
        timeline=1,
        start_lsn="0/2000028",
        start_wal=physical.segment_name(1, 2),
        start_segment_number=2,
        stop_time=T0,
    )
    for number in (2, 3, 4):
        WalSegment.objects.create(
            organisation=environment.project.organisation,
            environment=environment,
            database=database,
            base_backup=base,
            name=physical.segment_name(1, number),
            timeline=1,
            segment_number=number,
            size=16 << 20,
            stored_size=1 << 20,
            checksum_sha256="0" * 64,
            artifact_sha256="0" * 64,
            key=f"k/{number}",
            last_xact_at=T0 + timedelta(hours=number),
        )
    return base


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
