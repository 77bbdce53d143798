"""``manage.py pitr_setup`` (the wrapper's content; that PostgreSQL archives through it is
tests/pitr/test_verify_cluster.py), ``backup_now --base`` and the manual trigger's type
``base``: what they refuse."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from backups.models import Backup, BackupKind
from organizations.models import Role
from pitr.setup import FAST_PATH_MODULES
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def orders(environment):
    factories.DestinationFactory(organisation=environment.project.organisation, is_default=True)
    factories.ScheduleFactory(
        environment=environment, full_cron="0 2 * * *", wal_enabled=True, wal_retention_days=7
    )
    return factories.DatabaseFactory(
        environment=environment, name="Orders", slug="orders", engine="postgresql"
    )


def test_the_printed_wrapper_carries_the_embedded_profiles_paths_and_the_commands(orders):
    out, err = io.StringIO(), io.StringIO()
    call_command("pitr_setup", "--database", str(orders.id), stdout=out, stderr=err)
    script = out.getvalue()
    assert script.startswith("#!/bin/sh\n")
    assert "export DJANGO_SETTINGS_MODULE=config.settings.test" in script
    assert "export STRONGBOX_SQLITE_PATH=" in script or "export DATABASE_URL=" in script
    assert "export STRONGBOX_SECRETS_KEY_FILE=" in script
    assert "export STRONGBOX_WAL_SPOOL_DIR=" in script
    assert f"{sys.executable} " in script and "/manage.py archive_wal --database" in script
    assert f"fetch_wal --database {orders.id}" in script
    assert "archive_command = '/etc/postgresql/strongbox/strongbox-wal-orders-" in err.getvalue()
    assert "restore_command" in err.getvalue()


def test_a_name_shared_by_two_databases_needs_the_id(orders, environment):
    other = factories.EnvironmentFactory(project=environment.project)
    factories.DatabaseFactory(environment=other, name="Orders", engine="postgresql")
    with pytest.raises(CommandError, match="Several databases"):
        call_command("pitr_setup", "--database", "Orders", stdout=io.StringIO())


def test_a_mysql_database_has_no_archive_command(environment):
    db = factories.DatabaseFactory(environment=environment, name="Shop", engine="mysql")
    with pytest.raises(CommandError, match="PostgreSQL only"):
        call_command("pitr_setup", "--database", str(db.id), stdout=io.StringIO())


def test_backup_now_base_enqueues_a_base_backup(orders):
    out = io.StringIO()
    call_command("backup_now", "--database", str(orders.id), "--base", "--enqueue", stdout=out)
    backup = Backup.objects.get(database=orders)
    assert backup.kind == BackupKind.BASE and backup.method == "physical"
    assert "enqueued" in out.getvalue()


def test_the_trigger_refuses_a_base_backup_where_wal_archiving_is_off(
    client_for, organisation, environment
):
    factories.DestinationFactory(organisation=organisation, is_default=True)
    factories.DatabaseFactory(environment=environment, engine="postgresql")
    response = client_for(organisation, Role.OPERATOR).post(
        f"/api/environments/{environment.id}/backups", {"type": "base"}, format="json"
    )
    assert response.status_code == 400
    assert "walEnabled" in response.json()["error"]["message"]
    assert not Backup.objects.exists()


def test_the_trigger_refuses_a_base_backup_of_an_environment_without_postgresql(
    client_for, organisation, environment
):
    factories.DestinationFactory(organisation=organisation, is_default=True)
    factories.ScheduleFactory(
        environment=environment, full_cron="0 2 * * *", wal_enabled=True, wal_retention_days=7
    )
    factories.DatabaseFactory(environment=environment, engine="mysql")
    response = client_for(organisation, Role.OPERATOR).post(
        f"/api/environments/{environment.id}/backups", {"type": "base"}, format="json"
    )
    assert response.status_code == 400
    assert "type" in response.json()["error"]["fields"]
    assert not Backup.objects.exists()


def test_a_base_backup_takes_no_destination_of_its_own(client_for, organisation, orders):
    response = client_for(organisation, Role.OPERATOR).post(
        f"/api/environments/{orders.environment_id}/backups",
        {"type": "base", "destination": "anywhere"},
        format="json",
    )
    assert response.status_code == 400
    assert "destination" in response.json()["error"]["fields"]


def test_another_organisations_environment_is_a_404(client_for, other_organisation, orders):
    response = client_for(other_organisation, Role.OPERATOR).post(
        f"/api/environments/{orders.environment_id}/backups", {"type": "base"}, format="json"
    )
    assert response.status_code == 404
    assert not Backup.objects.exists()


def test_the_async_wrapper_runs_the_fast_path_without_site_packages(orders):
    out = io.StringIO()
    call_command(
        "pitr_setup", "--database", str(orders.id), "--async", stdout=out, stderr=io.StringIO()
    )
    script = out.getvalue()
    assert f"{sys.executable} -S " in script
    assert f'/manage.py archive_wal --async --database {orders.id} "$2" "$3"' in script
    assert "/manage.py fetch_wal --database" in script  # restore_command unchanged


def test_writing_the_wrapper_byte_compiles_what_the_fast_path_imports(orders, tmp_path):
    # PostgreSQL's commands run with PYTHONDONTWRITEBYTECODE: without these files each of
    # them would compile the modules again.
    call_command(
        "pitr_setup", "--database", str(orders.id), "--async", "--write", str(tmp_path),
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    for relative in FAST_PATH_MODULES:
        source = Path(settings.BASE_DIR) / relative
        cached = Path(importlib.util.cache_from_source(str(source)))
        header = cached.read_bytes()[:16]
        assert header[:4] == importlib.util.MAGIC_NUMBER
        # A timestamp-checked file of this very source: Python uses it instead of compiling.
        assert int.from_bytes(header[8:12], "little") == int(source.stat().st_mtime)
