"""With WAL archiving on, the full slot also anchors PITR with base backups."""

from datetime import timedelta

import pytest

from backups.models import Backup, BackupKind
from schedules.runs import schedules_run_due
from tests import factories
from tests.schedules.test_runs import SLOT, make_schedule

pytestmark = pytest.mark.django_db


def test_a_full_slot_with_wal_archiving_takes_a_base_backup_of_each_postgresql_database(
    environment, destination
):
    pg = factories.DatabaseFactory(environment=environment, engine="postgresql", slug="pg")
    factories.DatabaseFactory(environment=environment, engine="sqlite", slug="lite")
    schedule = make_schedule(environment, db_cron="", full_cron="0 2 * * *", wal_enabled=True)

    schedules_run_due(now=SLOT + timedelta(seconds=30))

    kinds = sorted(Backup.objects.filter(schedule=schedule).values_list("kind", "database"))
    assert kinds == sorted([(BackupKind.FULL, None), (BackupKind.BASE, pg.pk)])


def test_without_wal_archiving_a_full_slot_takes_no_base_backup(environment, destination):
    factories.DatabaseFactory(environment=environment, engine="postgresql", slug="pg")
    schedule = make_schedule(environment, db_cron="", full_cron="0 2 * * *", wal_enabled=False)

    schedules_run_due(now=SLOT + timedelta(seconds=30))

    assert list(Backup.objects.filter(schedule=schedule).values_list("kind", flat=True)) == [
        BackupKind.FULL
    ]
