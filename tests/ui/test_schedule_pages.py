"""Schedule editor and retention pages, through Django's test client."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from backups.models import BackupStatus, BackupTrigger
from schedules.models import Schedule
from tests import factories

pytestmark = pytest.mark.django_db


def edit_url(environment):
    return reverse("schedule-edit", args=[environment.id])


def form_data(**overrides):
    data = {"enabled": "on", "timezone": "Europe/London", "db_frequency": "daily"}
    data.update(overrides)
    return data


def test_a_viewer_reads_the_schedule_but_cannot_save_it(client, viewer, environment):
    factories.ScheduleFactory(environment=environment, db_cron="0 2 * * *")
    client.force_login(viewer)
    response = client.get(edit_url(environment))
    assert response.status_code == 200
    assert "Save schedule" not in response.content.decode()
    assert client.post(edit_url(environment), form_data()).status_code == 403


def test_an_admin_creates_a_schedule_with_rules_destinations_and_retention(
    client, owner, environment, destination
):
    client.force_login(owner)
    response = client.post(
        edit_url(environment),
        form_data(
            destinations=[str(destination.id)],
            weekly_enabled="on",
            weekly_day=["4"],
            weekly_hour="18",
            weekly_minute="30",
            retain_daily="7",
            retain_db_weekly="4",
        ),
    )
    assert response.status_code == 302
    schedule = Schedule.objects.get(environment=environment)
    assert schedule.db_cron == "0 2 * * *"
    assert schedule.timezone == "Europe/London"
    assert list(schedule.destinations.all()) == [destination]
    assert schedule.retain_daily == 7 and schedule.retain_db_weekly == 4
    rule = schedule.interval_rules.get()
    assert (rule.interval, rule.day, rule.hour, rule.minute) == ("weekly", [4], [18], [30])


def test_schedule_errors_are_shown_next_to_their_fields(client, owner, environment):
    client.force_login(owner)
    response = client.post(
        edit_url(environment),
        form_data(db_frequency="custom", db_cron="61 * * *", daily_enabled="on", retain_daily="-1"),
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_db_cron_error_1"' in html
    assert 'id="id_retain_daily_error_1"' in html
    assert "minute is required" in html
    assert not Schedule.objects.exists()


def test_the_editor_shows_the_next_five_runs_in_the_schedules_timezone(client, viewer, environment):
    factories.ScheduleFactory(environment=environment, db_cron="0 2 * * *", timezone="Asia/Tokyo")
    client.force_login(viewer)
    response = client.get(edit_url(environment))
    runs = response.context["runs"]["db"]["runs"]
    assert len(runs) == 5
    starts = [datetime.fromisoformat(r["iso"]) for r in runs]
    assert all(r.utcoffset() == timedelta(hours=9) and r.hour == 2 for r in starts)
    html = response.content.decode()
    # Written in Tokyo's time under the heading that says Asia/Tokyo, not in UTC.
    assert "(Asia/Tokyo)" in html
    assert html.count(", 02:00 JST</time>") == 5 and "17:00" not in html


def test_an_environment_without_a_saved_schedule_says_so_and_shows_no_runs(
    client, viewer, environment
):
    client.force_login(viewer)
    response = client.get(edit_url(environment))

    html = response.content.decode()
    assert "No schedule is saved for this environment" in html
    assert response.context["runs"]["db"]["runs"] == []
    assert response.context["runs"]["full"]["runs"] == []
    assert "<time" not in html.split('id="next-runs-title"')[1].split("</section>")[0]


def test_the_next_runs_endpoint_follows_the_form_as_it_is_edited(client, viewer, environment):
    client.force_login(viewer)
    url = reverse("schedule-next-runs", args=[environment.id])
    data = client.get(
        url, {"timezone": "America/New_York", "db_frequency": "custom", "db_cron": "15 3 * * 1"}
    ).json()
    assert data["timezone"] == "America/New_York"
    assert len(data["db"]["runs"]) == 5
    assert all("03:15" in r["text"] and r["text"].startswith("Mon") for r in data["db"]["runs"])
    bad = client.get(url, {"timezone": "UTC", "db_frequency": "custom", "db_cron": "nope"}).json()
    assert bad["errors"]["db_cron"] and bad["db"]["runs"] == []


def test_another_organisations_schedule_is_not_found(client, outsider, environment):
    client.force_login(outsider)
    assert client.get(edit_url(environment)).status_code == 404
    assert client.get(reverse("retention-preview", args=[environment.id])).status_code == 404
    assert client.post(reverse("retention-apply", args=[environment.id])).status_code == 404


def _daily_backups(environment, destination, days=5):
    now = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    backups = []
    for n in range(days):
        backup = factories.BackupFactory(
            environment=environment,
            trigger=BackupTrigger.SCHEDULED,
            created_at=now - timedelta(days=n),
            size=1000,
        )
        factories.BackupCopyFactory(backup=backup, destination=destination)
        backups.append(backup)
    return backups


def test_the_retention_preview_marks_each_backup_with_its_reason(
    client, viewer, environment, destination
):
    factories.ScheduleFactory(environment=environment, retain_daily=7)
    backups = _daily_backups(environment, destination)
    client.force_login(viewer)
    response = client.get(reverse("retention-preview", args=[environment.id]), {"retain_daily": 2})
    rows = {row["backup"].id: row for row in response.context["rows"]}
    assert [rows[b.id]["proposed"].keep for b in backups] == [True, True, False, False, False]
    assert all(rows[b.id]["current"].keep for b in backups)
    html = response.content.decode()
    assert html.count('data-decision="delete"') == 3
    assert "not kept by any rule" in html
    assert "frees 2.9\xa0KB" in html


def test_the_retention_preview_counts_each_database_on_its_own(
    client, viewer, owner, environment, destination
):
    factories.ScheduleFactory(environment=environment, retain_db_daily=7)
    night = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    databases = [
        factories.DatabaseFactory(environment=environment, name=name)
        for name in ("Users DB", "Orders DB")
    ]
    for minute, database in enumerate(databases):
        for day in range(5):
            factories.BackupFactory(
                environment=environment,
                database=database,
                trigger=BackupTrigger.SCHEDULED,
                created_at=night - timedelta(days=day, minutes=-minute),
                size=1000,
            )
    client.force_login(viewer)

    response = client.get(
        reverse("retention-preview", args=[environment.id]), {"retain_db_daily": 2}
    )

    lines = {line["proposed"].name: line for line in response.context["database_rows"]}
    assert (lines["Orders DB"]["proposed"].kept, lines["Orders DB"]["proposed"].deleted) == (2, 3)
    assert (lines["Users DB"]["proposed"].kept, lines["Users DB"]["proposed"].deleted) == (2, 3)
    assert lines["Orders DB"]["current"].kept == 5
    html = response.content.decode()
    assert 'id="retention-per-database"' in html
    assert html.count("keeps 2, deletes 3, frees 2.9\xa0KB") == 2
    assert "Orders DB · Database · Scheduled" in html
    client.force_login(owner)
    confirm = client.get(reverse("retention-apply", args=[environment.id]), {"retain_db_daily": 2})
    assert "Orders DB: deletes 3, keeps 2" in confirm.content.decode()


def test_applying_a_policy_asks_for_confirmation_then_deletes(
    client, owner, environment, destination
):
    factories.ScheduleFactory(environment=environment, retain_daily=7)
    backups = _daily_backups(environment, destination)
    client.force_login(owner)
    url = reverse("retention-apply", args=[environment.id])
    client.force_login(owner)
    confirm = client.get(url, {"retain_daily": 2})
    assert "3 backups" in confirm.content.decode()
    assert all(
        b.status == BackupStatus.COMPLETED
        for b in type(backups[0]).objects.filter(pk__in=[b.pk for b in backups])
    )
    response = client.post(url, {"retain_daily": 2, "confirm": "yes"})
    assert response.status_code == 302
    assert Schedule.objects.get(environment=environment).retain_daily == 2
    statuses = [type(b).objects.get(pk=b.pk).status for b in backups]
    assert statuses[:2] == [BackupStatus.COMPLETED] * 2
    assert statuses[2:] == [BackupStatus.DELETING] * 3


def test_only_admins_apply_retention(client, operator, environment):
    client.force_login(operator)
    url = reverse("retention-apply", args=[environment.id])
    assert client.post(url, {"retain_daily": 2, "confirm": "yes"}).status_code == 403


def test_the_retention_preview_page_shows_one_page_of_backups_and_totals_of_all(
    client, viewer, environment
):
    factories.ScheduleFactory(environment=environment, retain_daily=7)
    now = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    backups = [
        factories.BackupFactory.build(
            environment=environment,
            organisation=environment.project.organisation,
            trigger=BackupTrigger.SCHEDULED,
            created_at=now - timedelta(hours=n),
            size=1000,
        )
        for n in range(250)
    ]
    type(backups[0]).objects.bulk_create(backups)
    client.force_login(viewer)
    url = reverse("retention-preview", args=[environment.id])

    shown = []
    for number in (1, 2, 3):
        response = client.get(url, {"retain_daily": 2, "page": number})
        html = response.content.decode()
        assert "Proposed: keeps 2, deletes 248" in html
        assert f"Page {number} of 3 (250)" in html
        shown += [row["backup"].id for row in response.context["rows"]]
        if number < 3:
            # The next page keeps the proposal.
            assert f"?retain_daily=2&amp;page={number + 1}" in html
    assert len(response.context["rows"]) == 50
    assert "Backups 201–250 of 250" in html
    assert shown == [backup.id for backup in backups]


def test_the_apply_page_names_the_newest_twenty_it_deletes_and_counts_the_rest(
    client, owner, environment
):
    factories.ScheduleFactory(environment=environment, retain_daily=7)
    now = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0)
    backups = [
        factories.BackupFactory.build(
            environment=environment,
            organisation=environment.project.organisation,
            trigger=BackupTrigger.SCHEDULED,
            created_at=now - timedelta(days=n),
            size=1000,
        )
        for n in range(60)
    ]
    type(backups[0]).objects.bulk_create(backups)
    client.force_login(owner)

    response = client.get(reverse("retention-apply", args=[environment.id]), {"retain_daily": 5})

    html = response.content.decode()
    assert "55 backups" in html and "Apply and delete 55" in html
    assert [b.name for b in response.context["doomed"]] == [b.name for b in backups[5:25]]
    assert "… and 35 more" in html
