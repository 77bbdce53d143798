"""Email notifications: their content, and delivery through a real SMTP server on loopback."""

import socket

import pytest
from django.core import mail

from alerts.models import AlertKind, NotificationChannel, NotificationDelivery, Severity
from alerts.tasks import deliver_notification
from tests import factories


@pytest.fixture
def alert(organisation, environment):
    backup = factories.BackupFactory(environment=environment, name="quant-gov-orders-0001")
    return factories.AlertFactory(
        organisation=organisation,
        environment=environment,
        backup=backup,
        kind=AlertKind.BACKUP_FAILED,
        severity=Severity.CRITICAL,
        title="Backup of orders failed",
        message="pg_dump: error: connection to server failed",
        occurrences=3,
    )


@pytest.fixture
def inbox(organisation):
    return factories.NotificationChannelFactory(
        organisation=organisation,
        kind=NotificationChannel.Kind.EMAIL,
        recipients=["ops@quant.example"],
        url="",
        secret="",
    )


def deliver(channel, alert):
    return deliver_notification(str(channel.pk), str(alert.pk), 1)


def test_the_email_says_what_failed_where_and_how_often(inbox, alert, settings):
    settings.DEFAULT_FROM_EMAIL = "strongbox@quant.example"

    assert deliver(inbox, alert) is True

    [message] = mail.outbox
    assert message.to == ["ops@quant.example"]
    assert message.from_email == "strongbox@quant.example"
    assert message.subject == "[Strongbox] Critical: Backup of orders failed"
    assert "pg_dump: error: connection to server failed" in message.body
    assert "Organisation: Quant Gov" in message.body
    assert "Environment:  Dashboard / Staging" in message.body
    assert "Backup:       quant-gov-orders-0001" in message.body
    assert "Occurrences:  3" in message.body
    assert str(alert.pk) in message.body
    assert NotificationDelivery.objects.get(alert=alert).ok is True


def test_a_title_with_a_newline_cannot_break_the_subject_header(inbox, alert):
    alert.title = "Backup failed\nBcc: everyone@example.com"
    alert.save()

    deliver(inbox, alert)

    assert mail.outbox[0].subject == "[Strongbox] Critical: Backup failed Bcc: everyone@example.com"


def test_it_delivers_through_a_real_smtp_server_on_loopback(inbox, alert, settings, smtp_sink):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_sink.host
    settings.EMAIL_PORT = smtp_sink.port
    settings.DEFAULT_FROM_EMAIL = "strongbox@quant.example"

    assert deliver(inbox, alert) is True

    [received] = smtp_sink.messages
    assert received["from"] == "strongbox@quant.example"
    assert received["to"] == ["ops@quant.example"]
    assert b"Subject: [Strongbox] Critical: Backup of orders failed" in received["data"]
    assert b"Occurrences:  3" in received["data"]


def test_an_unreachable_mail_server_is_logged_and_retried(
    inbox, alert, settings, scheduled_retries
):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = closed_port

    assert deliver(inbox, alert) is False

    delivery = NotificationDelivery.objects.get(alert=alert)
    assert "ConnectionRefusedError" in delivery.error
    assert [args[2] for _, args in scheduled_retries()] == [2]
