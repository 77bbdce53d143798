"""The environment and backup pages, through Django's test client."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from backups.models import Backup, BackupStatus
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def database(environment):
    return factories.DatabaseFactory(environment=environment, name="Main", slug="main")


def env_url(environment):
    return reverse("environment-detail", args=[environment.project_id, environment.id])


def make_backup(environment, destination=None, **fields):
    backup = factories.BackupFactory(environment=environment, **fields)
    if destination is not None:
        factories.BackupCopyFactory(backup=backup, destination=destination)
    return backup


def test_signed_out_visitors_are_sent_to_the_sign_in_page(client, environment):
    response = client.get(env_url(environment))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_viewer_sees_the_environment_backups_and_chart_but_no_trigger(
    client, viewer, environment, destination
):
    now = timezone.now()
    for days, size in ((3, 1000), (2, 2000), (1, 4000)):
        make_backup(environment, destination, created_at=now - timedelta(days=days), size=size)
    client.force_login(viewer)
    response = client.get(env_url(environment))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('data-backup-id="') == 3
    assert "<svg" in html and "<polyline" in html
    assert "3 completed backups" in html
    assert "Back up now" not in html


def test_an_operator_sees_the_trigger_button(client, operator, environment, database):
    client.force_login(operator)
    html = client.get(env_url(environment)).content.decode()
    assert "Back up now" in html


def test_the_list_filters_by_status_kind_and_date_range(client, viewer, environment):
    now = timezone.now()
    old = make_backup(environment, created_at=now - timedelta(days=10))
    failed = make_backup(environment, status=BackupStatus.FAILED, created_at=now)
    full = make_backup(environment, kind="full", created_at=now)
    client.force_login(viewer)

    def names(**params):
        response = client.get(env_url(environment), params)
        assert response.status_code == 200
        return {b.name for b in response.context["page"]}

    assert names(status="failed") == {failed.name}
    assert names(kind="full") == {full.name}
    since = (now - timedelta(days=2)).date().isoformat()
    assert old.name not in names(date_from=since)
    assert names(date_to=(now - timedelta(days=5)).date().isoformat()) == {old.name}


def test_deleted_backups_are_left_out_unless_asked_for(client, viewer, environment):
    kept = make_backup(environment)
    deleted = make_backup(environment, status=BackupStatus.DELETED)
    client.force_login(viewer)

    def names(**params):
        return {b.name for b in client.get(env_url(environment), params).context["page"]}

    assert names() == {kept.name}
    assert names(kind="database") == {kept.name}
    assert names(status="deleted") == {deleted.name}


def test_a_bad_filter_shows_its_error_next_to_the_field(client, viewer, environment):
    client.force_login(viewer)
    response = client.get(env_url(environment), {"status": "nonsense", "date_from": "2026-13-40"})
    html = response.content.decode()
    assert 'id="id_status_error_1"' in html
    assert 'id="id_date_from_error_1"' in html
    assert 'aria-invalid="true"' in html


def test_the_list_is_paginated(client, viewer, environment):
    for _ in range(25):
        make_backup(environment)
    client.force_login(viewer)
    first = client.get(env_url(environment))
    assert len(first.context["page"].object_list) == 20
    second = client.get(env_url(environment), {"page": 2})
    assert len(second.context["page"].object_list) == 5


def test_another_organisations_environment_is_not_found(client, outsider, environment):
    client.force_login(outsider)
    assert client.get(env_url(environment)).status_code == 404


def test_an_operator_triggers_a_backup(client, operator, environment, database, destination):
    client.force_login(operator)
    response = client.post(reverse("backup-trigger", args=[environment.id]), {"kind": "database"})
    assert response.status_code == 302
    assert response["Location"] == env_url(environment)
    backup = Backup.objects.get(environment=environment)
    assert backup.status == BackupStatus.SCHEDULED
    assert backup.requested_by == operator


def test_a_viewer_cannot_trigger_a_backup(client, viewer, environment, database, destination):
    client.force_login(viewer)
    response = client.post(reverse("backup-trigger", args=[environment.id]), {"kind": "database"})
    assert response.status_code == 403
    assert not Backup.objects.exists()


def test_a_trigger_problem_is_shown_as_a_message(client, operator, environment, database):
    client.force_login(operator)  # no destination exists
    response = client.post(
        reverse("backup-trigger", args=[environment.id]), {"kind": "database"}, follow=True
    )
    assert "no backup destination" in response.content.decode()


def test_the_backup_detail_shows_phases_copies_and_checksum(
    client, viewer, environment, destination
):
    backup = make_backup(
        environment,
        destination,
        checksum_sha256="ab" * 32,
        phases=[
            {
                "name": "DUMP",
                "status": "SUCCESS",
                "started_at": timezone.now().isoformat(),
                "finished_at": timezone.now().isoformat(),
                "duration_sec": 1.5,
            },
        ],
    )
    client.force_login(viewer)
    response = client.get(reverse("backup-detail", args=[backup.id]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "ab" * 32 in html
    assert "Dump" in html and "1.5 s" in html
    assert destination.name in html
    assert "Delete…" not in html  # viewers read only


def test_a_running_backup_shows_a_live_progress_bar(client, viewer, environment):
    backup = make_backup(
        environment, status=BackupStatus.IN_PROGRESS, bytes_done=50, bytes_total=200, size=None
    )
    client.force_login(viewer)
    html = client.get(reverse("backup-detail", args=[backup.id])).content.decode()
    assert f'data-progress-url="/api/backups/{backup.id}/progress"' in html
    assert 'aria-valuenow="25"' in html
    assert "js/progress.js" in html


def test_a_running_backups_page_lists_the_phases_to_come_and_holds_back_its_actions(
    client, owner, environment, destination
):
    started = timezone.now().isoformat()
    backup = make_backup(
        environment,
        destination,
        status=BackupStatus.IN_PROGRESS,
        size=None,
        phases=[
            {"name": name, "status": "RUNNING", "started_at": started}
            for name in ("DUMP", "COMPRESS", "UPLOAD")
        ],
    )
    client.force_login(owner)
    html = client.get(reverse("backup-detail", args=[backup.id])).content.decode()

    assert 'data-phase="DUMP" data-state="running"' in html
    assert 'data-phase="VERIFY" data-state="pending"' in html
    assert "js/live_run.js" in html and "data-reload-on-done" not in html
    # Restore, download and delete wait, hidden, for the stream to say the run ended.
    assert 'data-testid="restore" hidden data-live-when="completed"' in html
    assert 'data-testid="download" hidden data-live-when="completed"' in html
    assert 'hidden data-live-when="ended">Delete…' in html


def test_a_finished_backups_page_lists_only_the_phases_it_ran(client, owner, environment):
    started = timezone.now().isoformat()
    backup = make_backup(
        environment,
        status=BackupStatus.FAILED,
        phases=[{"name": "DUMP", "status": "ERROR", "started_at": started}],
    )
    client.force_login(owner)
    html = client.get(reverse("backup-detail", args=[backup.id])).content.decode()

    assert 'data-phase="DUMP" data-state="failed"' in html
    assert 'data-phase="VERIFY"' not in html
    assert "data-live-when" not in html and "js/live_run.js" not in html


def test_another_organisations_backup_is_not_found(client, outsider, environment):
    backup = make_backup(environment)
    client.force_login(outsider)
    assert client.get(reverse("backup-detail", args=[backup.id])).status_code == 404
    assert client.post(reverse("backup-delete", args=[backup.id])).status_code == 404


def test_deleting_asks_for_confirmation_then_deletes(client, operator, environment, destination):
    backup = make_backup(environment, destination)
    client.force_login(operator)
    confirm = client.get(reverse("backup-delete", args=[backup.id]))
    assert "Delete this backup?" in confirm.content.decode()
    backup.refresh_from_db()
    assert backup.status == BackupStatus.COMPLETED
    response = client.post(reverse("backup-delete", args=[backup.id]))
    assert response.status_code == 302
    backup.refresh_from_db()
    assert backup.status == BackupStatus.DELETING


def test_a_viewer_cannot_delete(client, viewer, environment):
    backup = make_backup(environment)
    client.force_login(viewer)
    assert client.post(reverse("backup-delete", args=[backup.id])).status_code == 403


def test_the_dashboard_summarises_each_environment(client, viewer, environment, destination):
    make_backup(environment, destination, size=3 * 1024 * 1024)
    factories.ScheduleFactory(environment=environment, db_cron="0 2 * * *")
    factories.AlertFactory(organisation=environment.project.organisation, environment=environment)
    client.force_login(viewer)
    response = client.get(reverse("dashboard"))
    row = response.context["projects"][0].rows[0]
    assert row.last_backup is not None
    assert row.next_run is not None
    assert row.open_alerts == 1
    assert row.storage_bytes == 3 * 1024 * 1024
    assert "3.0\xa0MB" in response.content.decode()


def test_the_list_searches_backup_and_database_names(client, viewer, environment):
    orders = factories.DatabaseFactory(environment=environment, name="Orders", slug="orders")
    billing = factories.DatabaseFactory(environment=environment, name="Billing", slug="billing")
    of_orders = make_backup(environment, database=orders)
    of_billing = make_backup(environment, database=billing)
    client.force_login(viewer)

    def names(**params):
        return {b.name for b in client.get(env_url(environment), params).context["page"]}

    assert names(search="ORDERS") == {of_orders.name}
    assert names(search=of_billing.name) == {of_billing.name}
    assert names(search="  ") == {of_orders.name, of_billing.name}
    assert names(search="nothing-like-it") == set()
