"""Restores write into tenants' databases: the target's host follows the host policy too."""

import pytest

from organizations.services import host_policy_set
from restores.models import RestoreStatus
from tests import factories
from tests.backups.helpers import database_for, run_backup_now
from tests.fixtures.databases import PostgreSQLEngine, fill_postgres, table_checksums
from tests.restores.helpers import leftovers, run_restore_now

pytestmark = pytest.mark.django_db


def _public_tables(spec) -> int:
    with PostgreSQLEngine().connect(spec) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()[0]


def test_a_restore_into_a_host_the_policy_no_longer_allows_fails_and_leaves_the_target_alone(
    organisation, project, environment, destination, make_postgres_database
):
    host_policy_set(organisation=organisation, allowed_hosts=["127.0.0.0/8"])
    source = make_postgres_database()
    fill_postgres(source, rows=100)
    backup = run_backup_now(
        environment=environment, kind="database", database=database_for(environment, source)
    )
    production = factories.EnvironmentFactory(project=project, name="Production", slug="prod")
    target = make_postgres_database()
    database_for(production, target)
    request = {"backup": backup, "target_type": "other", "target_environment": str(production.id)}

    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])
    refused = run_restore_now(**request)
    assert refused.status == RestoreStatus.FAILED
    assert "may reach" in refused.message
    assert _public_tables(target) == 0  # still as empty as it was
    assert leftovers(target) == []

    host_policy_set(organisation=organisation, allowed_hosts=["127.0.0.0/8"])
    restored = run_restore_now(**request)
    assert restored.status == RestoreStatus.COMPLETED, restored.message
    assert table_checksums(target) == table_checksums(source)
