"""The host policy at connect time: real backups of real servers, allowed or refused by the
policy as the host resolves when the engine connects, and clients that connect to the
checked address instead of resolving the name again."""

import io
import socket
from dataclasses import replace

import pytest

from backups.engines import EngineError, get_engine
from backups.execution import connection_spec_for
from backups.models import BackupStatus
from organizations.services import host_policy_set
from restores import loading
from tests import factories
from tests.backups.helpers import database_for, restore_database_artifact, run_backup_now
from tests.fixtures.databases import dump_to_bytes, fill_mariadb, fill_postgres, table_checksums

pytestmark = pytest.mark.django_db

UNRESOLVABLE = "checked-address-only.invalid"


def _artifacts(root):
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_a_postgresql_backup_allowed_by_the_policy_runs_and_restores_identically(
    organisation, environment, destination, postgres_spec, make_postgres_database
):
    host_policy_set(organisation=organisation, allowed_hosts=["127.0.0.0/8", "::1/128"])
    fill_postgres(postgres_spec, rows=200)
    database = database_for(environment, postgres_spec)

    backup = run_backup_now(environment=environment, kind="database", database=database)

    assert backup.status == BackupStatus.COMPLETED, backup.message
    target = make_postgres_database()
    restore_database_artifact(backup, target)
    assert table_checksums(target) == table_checksums(postgres_spec)


def test_a_postgresql_backup_is_refused_when_the_policy_changes_to_exclude_loopback(
    organisation, environment, destination, postgres_spec, settings
):
    fill_postgres(postgres_spec, rows=20)
    host_policy_set(organisation=organisation, allowed_hosts=["127.0.0.0/8"])
    database = database_for(environment, postgres_spec)  # passed while loopback was allowed
    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])

    backup = run_backup_now(environment=environment, kind="database", database=database)

    assert backup.status == BackupStatus.FAILED
    assert "not a host this organisation may reach" in backup.message
    assert _artifacts(settings.STRONGBOX_LOCAL_DESTINATION_ROOT) == []


def test_a_host_name_that_passed_by_name_is_refused_once_only_networks_that_miss_it_remain(
    organisation, environment, destination, postgres_spec
):
    # The machine's own name resolves locally, to an address outside 10.0.0.0/8.
    name = socket.gethostname()
    host_policy_set(organisation=organisation, allowed_hosts=[name])
    database = database_for(environment, replace(postgres_spec, host=name))
    host_policy_set(organisation=organisation, allowed_hosts=["10.0.0.0/8"])

    with pytest.raises(EngineError, match="may reach"):
        get_engine("postgresql").check_connection(connection_spec_for(database))
    backup = run_backup_now(environment=environment, kind="database", database=database)
    assert backup.status == BackupStatus.FAILED
    assert "may reach" in backup.message


def test_metadata_addresses_are_refused_at_connect_time_even_without_a_policy(
    environment, destination
):
    # A row saved before host policies existed: for an organisation without a policy, the
    # always-refused addresses are the only change.
    database = factories.DatabaseFactory(
        environment=environment, engine="postgresql", host="169.254.169.254", port=5432,
        username="postgres", database_name="orders",
    )  # fmt: skip
    backup = run_backup_now(environment=environment, kind="database", database=database)
    assert backup.status == BackupStatus.FAILED
    assert "may reach" in backup.message


def _pinned_to(spec, address):
    """``spec`` under a name no resolver knows, its check answering with ``address``: a
    client that resolved the name itself could not connect at all."""
    return replace(spec, host=UNRESOLVABLE, address_check=lambda host, port: address)


def test_pg_dump_and_psycopg_connect_to_the_checked_address_not_to_the_name(postgres_spec):
    counts = fill_postgres(postgres_spec, rows=30)
    pinned = _pinned_to(postgres_spec, postgres_spec.host)

    data, recorded = dump_to_bytes(pinned)  # psycopg counts rows, pg_dump streams

    assert data.startswith(b"PGDMP")
    assert sum(recorded.values()) == sum(counts.values())


def test_mariadb_dump_and_pymysql_connect_to_the_checked_address_not_to_the_name(
    mariadb_spec, make_mariadb_database
):
    fill_mariadb(mariadb_spec, rows=30)
    pinned = _pinned_to(mariadb_spec, mariadb_spec.host)
    data, recorded = dump_to_bytes(pinned)
    assert b"CREATE TABLE `customers`" in data

    target = make_mariadb_database()
    loading.load(_pinned_to(target, target.host), io.BytesIO(data))
    assert table_checksums(target) == table_checksums(mariadb_spec)


def test_a_refusing_check_stops_the_engine_before_any_tool_starts(postgres_spec):
    def refuse(host, port):
        raise OSError("refused by the test's policy")

    with pytest.raises(EngineError, match="refused by the test's policy"):
        dump_to_bytes(replace(postgres_spec, address_check=refuse))
