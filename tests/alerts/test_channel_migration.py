"""Migration 0003: existing channels keep working, their URLs and secrets encrypted."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from alerts.models import NotificationChannel
from tests import factories

BEFORE = [("alerts", "0002_alert_and_delivery_uniqueness")]
AFTER = [("alerts", "0003_channel_kinds_and_filters")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def raw(table, column, pk):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_existing_email_and_webhook_channels_move_over_encrypted():
    organisation = factories.OrganisationFactory()
    old_apps = migrate(BEFORE)
    Channel = old_apps.get_model("alerts", "NotificationChannel")  # noqa: N806
    email = Channel.objects.create(
        organisation_id=organisation.pk, kind="email", target="ops@example.com", secret=""
    )
    hook = Channel.objects.create(
        organisation_id=organisation.pk,
        kind="webhook",
        target="https://hooks.example.com/t0ken",
        secret="whsec-1",
    )
    pk = hook.pk.hex if connection.vendor == "sqlite" else str(hook.pk)
    assert raw("alerts_notificationchannel", "secret", pk) == "whsec-1"  # plain before

    migrate(AFTER)

    assert raw("alerts_notificationchannel", "url", pk).startswith("enc1:")
    assert raw("alerts_notificationchannel", "secret", pk).startswith("enc1:")
    moved_hook = NotificationChannel.objects.get(pk=hook.pk)
    assert (moved_hook.url, moved_hook.secret) == ("https://hooks.example.com/t0ken", "whsec-1")
    assert moved_hook.name == "Webhook channel"  # never the URL, which is a secret
    moved_email = NotificationChannel.objects.get(pk=email.pk)
    assert (moved_email.recipients, moved_email.url) == (["ops@example.com"], "")
    assert moved_email.events == [] and moved_email.min_severity == "info"
