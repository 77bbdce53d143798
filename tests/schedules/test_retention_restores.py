"""After retention ran, every database of a three-database environment still restores.

Real backups of two SQLite databases and a PostgreSQL database through the real dump
tools, one a night for four simulated nights (the data changes every night), retention
enforced with its deletions carried out, then each database's newest kept backup
restored and compared with the data it was taken from.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import Backup, BackupStatus, BackupTrigger
from backups.tasks import delete_backup
from restores.models import RestoreStatus
from schedules.enforcement import retention_enforce
from tests import factories
from tests.backups.helpers import database_for, run_backup_now
from tests.fixtures.databases import PostgreSQLEngine, fill_postgres, fill_sqlite, table_checksums
from tests.restores.helpers import run_restore_now

pytestmark = pytest.mark.django_db

NIGHTS = 4


def change(spec, night: int) -> None:
    """What a day of use does to a database: new rows and changed ones."""
    statements = [
        f"INSERT INTO customers (id, name) VALUES ({100_000 + night}, 'night {night}')",  # noqa: S608
        f"UPDATE measurements SET big = big + {night}",  # noqa: S608
    ]
    if spec.engine == "postgresql":
        with PostgreSQLEngine().connect(spec) as conn:
            for statement in statements:
                conn.execute(statement)
    else:
        with sqlite3.connect(spec.name) as conn:
            for statement in statements:
                conn.execute(statement)
        conn.close()


def test_each_database_restores_its_newest_kept_backup_after_retention(
    environment, destination, make_sqlite_database, make_postgres_database
):
    specs = {
        "Users DB": make_sqlite_database(),
        "Events DB": make_sqlite_database(),
        "Orders DB": make_postgres_database(),
    }
    fill_sqlite(specs["Users DB"], rows=150)
    fill_sqlite(specs["Events DB"], rows=100)
    fill_postgres(specs["Orders DB"], rows=200)
    databases = {name: database_for(environment, spec, name=name) for name, spec in specs.items()}
    schedule = factories.ScheduleFactory(environment=environment, retain_db_daily=2)
    # Each night the databases are dumped a minute apart: under one series per kind the
    # last of them would take every daily bucket.
    first_night = timezone.now() - timedelta(days=NIGHTS)
    taken: dict[str, list[tuple[Backup, dict]]] = {name: [] for name in specs}
    for night in range(NIGHTS):
        for minute, (name, database) in enumerate(databases.items()):
            change(specs[name], night)
            backup = run_backup_now(
                environment=environment,
                kind="database",
                database=database,
                trigger=BackupTrigger.SCHEDULED,
                schedule=schedule,
            )
            assert backup.status == BackupStatus.COMPLETED, backup.message
            created_at = first_night + timedelta(days=night, minutes=minute)
            Backup.objects.filter(pk=backup.pk).update(created_at=created_at)
            taken[name].append((backup, table_checksums(specs[name])))

    removed = retention_enforce(environment=environment)
    for backup in removed:
        delete_backup(str(backup.pk))

    # Each database lost its two oldest nights and kept its last two.
    assert sorted(b.pk for b in removed) == sorted(
        backup.pk for backups in taken.values() for backup, _ in backups[:2]
    )
    assert all(Backup.objects.get(pk=b.pk).status == BackupStatus.DELETED for b in removed), (
        "the deletions ran"
    )
    for name, database in databases.items():
        kept = Backup.objects.filter(database=database, status=BackupStatus.COMPLETED)
        newest = kept.order_by("-created_at").first()
        backup, fingerprint = taken[name][-1]
        assert newest.pk == backup.pk, name
        assert kept.count() == 2, name
        change(specs[name], 99)  # the day after: the restore has something to undo
        assert table_checksums(specs[name]) != fingerprint

        restore = run_restore_now(backup=newest, target_type="same")

        assert restore.status == RestoreStatus.COMPLETED, restore.message
        assert table_checksums(specs[name]) == fingerprint, name
