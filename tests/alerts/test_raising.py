"""Raising alerts: de-duplication by cause, resolution by a later success, notifications."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts.models import Alert, AlertKind, NotificationChannel, Severity
from alerts.services import (
    DELIVERY_TASK,
    alert_dedup_key,
    alert_dismiss,
    alert_raise,
    alert_resolve,
)
from backups.models import BackupStatus
from tests import factories


@pytest.fixture
def database(environment):
    return factories.DatabaseFactory(environment=environment, name="orders", slug="orders")


@pytest.fixture
def failed_backup(environment, database):
    return factories.BackupFactory(
        environment=environment, database=database, status=BackupStatus.FAILED
    )


def raise_backup_failed(backup, message="pg_dump exited with status 1"):
    return alert_raise(
        organisation=backup.organisation,
        kind=AlertKind.BACKUP_FAILED,
        title="Backup of orders failed",
        message=message,
        backup=backup,
        severity=Severity.CRITICAL,
    )


def test_it_raises_an_alert_for_a_failed_backup_in_its_environment(
    organisation, environment, database, failed_backup
):
    alert = raise_backup_failed(failed_backup)

    assert alert.organisation == organisation
    assert alert.environment == environment
    assert alert.backup == failed_backup
    assert alert.kind == AlertKind.BACKUP_FAILED
    assert alert.severity == Severity.CRITICAL
    assert alert.dedup_key == f"backup_failed:database:{database.pk}"
    assert alert.occurrences == 1
    assert alert.read_at is None and alert.dismissed_at is None and alert.resolved_at is None


def test_the_same_cause_twice_is_one_alert_seen_twice(environment, database, failed_backup):
    first = raise_backup_failed(failed_backup, message="connection refused")
    next_night = factories.BackupFactory(
        environment=environment, database=database, status=BackupStatus.FAILED
    )

    second = raise_backup_failed(next_night, message="disk full")

    assert Alert.objects.count() == 1
    assert second.pk == first.pk
    assert second.occurrences == 2
    assert second.last_seen_at >= first.last_seen_at
    assert second.first_seen_at == first.first_seen_at
    assert second.message == "disk full"
    assert second.backup == next_night


def test_failures_of_two_databases_are_two_alerts(environment, failed_backup):
    other_database = factories.DatabaseFactory(environment=environment)
    other_failure = factories.BackupFactory(environment=environment, database=other_database)

    raise_backup_failed(failed_backup)
    raise_backup_failed(other_failure)

    assert Alert.objects.count() == 2


def test_the_same_explicit_key_in_two_organisations_is_two_alerts(organisation, other_organisation):
    for org in (organisation, other_organisation):
        alert_raise(
            organisation=org,
            kind=AlertKind.DESTINATION_UNREACHABLE,
            title="S3 is unreachable",
            dedup_key="destination_unreachable:s3",
        )

    assert Alert.objects.filter(occurrences=1).count() == 2


def test_a_cause_that_recurs_after_dismissal_opens_a_new_alert(owner, failed_backup):
    dismissed = alert_dismiss(alert=raise_backup_failed(failed_backup), user=owner)

    again = raise_backup_failed(failed_backup)

    assert again.pk != dismissed.pk
    assert again.occurrences == 1


def test_a_later_success_of_the_same_database_resolves_the_open_alert(
    organisation, environment, database, failed_backup
):
    alert = raise_backup_failed(failed_backup)
    success = factories.BackupFactory(environment=environment, database=database)

    resolved = alert_resolve(
        organisation=organisation, kind=AlertKind.BACKUP_FAILED, backup=success
    )

    alert.refresh_from_db()
    assert resolved == 1
    assert alert.resolved_at is not None
    assert raise_backup_failed(failed_backup).pk != alert.pk  # a new failure is news again


def test_a_success_elsewhere_leaves_the_alert_open(
    organisation, other_organisation, environment, failed_backup
):
    alert = raise_backup_failed(failed_backup)
    key = alert.dedup_key

    assert alert_resolve(organisation=other_organisation, dedup_key=key) == 0
    assert (
        alert_resolve(
            organisation=organisation, kind=AlertKind.RESTORE_FAILED, environment=environment
        )
        == 0
    )
    alert.refresh_from_db()
    assert alert.resolved_at is None


def test_a_missed_schedule_is_keyed_by_its_environment(organisation, environment):
    alert = alert_raise(
        organisation=organisation,
        kind=AlertKind.SCHEDULE_MISSED,
        title="Nightly backup did not start",
        environment=environment,
    )

    assert alert.dedup_key == alert_dedup_key(
        kind=AlertKind.SCHEDULE_MISSED, environment=environment
    )
    assert (
        alert_resolve(
            organisation=organisation, kind=AlertKind.SCHEDULE_MISSED, environment=environment
        )
        == 1
    )


def test_it_refuses_a_backup_of_another_organisation(other_organisation, failed_backup):
    with pytest.raises(ValueError, match="another organisation"):
        alert_raise(
            organisation=other_organisation,
            kind=AlertKind.BACKUP_FAILED,
            title="Backup failed",
            backup=failed_backup,
        )


def test_a_new_alert_is_queued_once_for_each_enabled_channel_on_commit(
    organisation,
    other_organisation,
    failed_backup,
    queued_deliveries,
    django_capture_on_commit_callbacks,
):
    email = factories.NotificationChannelFactory(
        organisation=organisation,
        kind=NotificationChannel.Kind.EMAIL,
        url="",
        secret="",
        recipients=["ops@example.com"],
    )
    hook = factories.NotificationChannelFactory(organisation=organisation)
    factories.NotificationChannelFactory(organisation=organisation, enabled=False)
    factories.NotificationChannelFactory(organisation=other_organisation)

    with django_capture_on_commit_callbacks(execute=True):
        alert = raise_backup_failed(failed_backup)
        assert queued_deliveries() == []  # nothing leaves before the caller's transaction commits

    assert sorted(queued_deliveries()) == sorted(
        [
            (DELIVERY_TASK, (str(email.pk), str(alert.pk), 1, "raised")),
            (DELIVERY_TASK, (str(hook.pk), str(alert.pk), 1, "raised")),
        ]
    )


def test_a_recurrence_is_not_notified_again(
    organisation, failed_backup, queued_deliveries, django_capture_on_commit_callbacks
):
    factories.NotificationChannelFactory(organisation=organisation)
    raise_backup_failed(failed_backup)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        raise_backup_failed(failed_backup)

    assert callbacks == []
    assert queued_deliveries() == []


def test_a_broken_task_queue_does_not_fail_the_caller(
    organisation, failed_backup, monkeypatch, django_capture_on_commit_callbacks
):
    factories.NotificationChannelFactory(organisation=organisation)

    def broken(*args, **kwargs):
        raise ConnectionError("broker is down")

    monkeypatch.setattr("django_q.tasks.async_task", broken)

    with django_capture_on_commit_callbacks(execute=True):
        alert = raise_backup_failed(failed_backup)

    assert Alert.objects.get() == alert


def test_last_seen_moves_forward_with_each_occurrence(failed_backup, monkeypatch):
    first = raise_backup_failed(failed_backup)
    later = timezone.now() + timedelta(hours=24)
    monkeypatch.setattr("alerts.services.timezone.now", lambda: later)

    second = raise_backup_failed(failed_backup)

    assert second.last_seen_at == later
    assert second.first_seen_at == first.first_seen_at


def test_a_failed_restore_is_keyed_by_its_target_database(organisation, environment, database):
    restore = factories.RestoreFactory(
        backup=factories.BackupFactory(environment=environment, database=database),
        target_database=database,
    )

    alert = alert_raise(
        organisation=organisation,
        kind=AlertKind.RESTORE_FAILED,
        title="Restore into orders failed",
        restore=restore,
    )

    assert alert.dedup_key == f"restore_failed:database:{database.pk}"
    assert alert.environment == environment
    assert alert.restore == restore


def test_the_database_refuses_a_second_open_alert_for_one_cause(organisation):
    factories.AlertFactory(organisation=organisation, dedup_key="wal_lag:database:1")
    factories.AlertFactory(
        organisation=organisation, dedup_key="wal_lag:database:1", resolved_at=timezone.now()
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        factories.AlertFactory(organisation=organisation, dedup_key="wal_lag:database:1")


def test_an_unknown_kind_is_a_programming_error(organisation):
    with pytest.raises(ValueError, match="Unknown alert kind"):
        alert_raise(organisation=organisation, kind="backup_exploded", title="?")


def test_a_long_title_is_shortened_rather_than_failing_the_caller(organisation, environment):
    alert = alert_raise(
        organisation=organisation,
        kind=AlertKind.WAL_LAG,
        title="WAL archiving lags: " + "x" * 1000,
        environment=environment,
    )

    assert len(alert.title) == 300
