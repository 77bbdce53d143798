"""The point-in-time recovery card on the environment page and the restore form."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups.models import Backup, BackupKind, WalArchiver, WalSegment
from pitr import physical
from tests import factories
from tests.pitr.conftest import recorded_history

pytestmark = pytest.mark.django_db


@pytest.fixture
def orders(environment):
    """A PostgreSQL database with WAL archiving on, a base backup and two segments after it."""
    return recorded_history(environment, start=timezone.now() - timedelta(hours=3), segments=(2, 3))


def environment_page(client, viewer, environment):
    client.force_login(viewer)
    url = f"/projects/{environment.project_id}/environments/{environment.id}/"
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_the_environment_page_shows_the_recoverable_window(client, viewer, environment, orders):
    page = environment_page(client, viewer, environment)
    assert "Point-in-time recovery window" in page
    assert "Recoverable from" in page
    assert "Orders" in page and 'class="window"' in page


def test_it_says_when_archiving_fails_even_before_there_is_a_window(client, viewer, environment):
    database = factories.DatabaseFactory(environment=environment, engine="postgresql")
    factories.ScheduleFactory(environment=environment, wal_enabled=True)
    WalArchiver.objects.create(
        database=database,
        last_failed_wal=physical.segment_name(1, 9),
        last_failed_at=timezone.now(),
        last_error="destination unreachable",
        failed_count=3,
        consecutive_failures=3,
    )
    page = environment_page(client, viewer, environment)
    assert "No recoverable window yet" in page
    assert "failed 3 times in a row: destination unreachable" in page
    assert "status-failing" in page


def test_an_environment_without_wal_archiving_has_no_card(client, viewer, environment):
    factories.DatabaseFactory(environment=environment, engine="postgresql")
    assert "Point-in-time recovery" not in environment_page(client, viewer, environment)


def test_the_restore_form_shows_the_same_card(client, operator, environment, orders):
    client.force_login(operator)
    response = client.get(f"/backups/{orders.id}/restore/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Point-in-time recovery window" in page and 'class="window"' in page
    assert "Recover to a point in time" in page


def test_the_card_explains_each_status_shows_the_archive_command_and_offers_a_base_backup(
    client, operator, environment, orders
):
    database = orders.database
    factories.DestinationFactory(organisation=environment.project.organisation, is_default=True)
    page = environment_page(client, operator, environment)
    assert "Every PostgreSQL database can be recovered to any second" in page
    assert f"archive_wal --database {database.id} %p %f" in page
    assert f"manage.py pitr_setup --database {database.id}" in page
    assert "Take a base backup now" in page

    response = client.post(
        f"/environments/{environment.id}/backups/new/", {"kind": "base"}, follow=True
    )
    assert response.status_code == 200
    notes = [str(m) for m in response.context["messages"]]
    assert any(n.startswith("Backup started") for n in notes), notes
    base = Backup.objects.exclude(pk=orders.pk).get(database=database, kind=BackupKind.BASE)
    assert base.status == "scheduled" and base.method == "physical" and base.trigger == "manual"
    assert "Backup started" in response.content.decode()


def test_a_viewer_gets_no_base_backup_button(client, viewer, environment, orders):
    assert "Take a base backup now" not in environment_page(client, viewer, environment)


def test_a_lost_segment_is_named_on_the_card(client, viewer, environment, orders):
    WalSegment.objects.filter(database=orders.database, segment_number=3).update(
        lost=True, problem="Disk: missing"
    )
    page = environment_page(client, viewer, environment)
    assert "no destination holds it intact any more (Disk: missing)" in page
    assert "recovery cannot cross a gap" in page
