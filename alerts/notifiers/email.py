"""Email notifications through Django's mail framework (``EMAIL_*`` settings)."""

from __future__ import annotations

import smtplib
from datetime import UTC

from django.conf import settings
from django.core.mail import get_connection, send_mail

from alerts.notifiers import DeliveryResult


def render(alert) -> tuple[str, str]:
    """The subject and plain-text body of the email for ``alert``."""
    title = " ".join(alert.title.split())  # a header cannot hold a newline
    subject = f"[Strongbox] {alert.get_severity_display()}: {title}"
    facts = [("Organisation", alert.organisation.name)]
    if alert.environment_id:
        facts.append(("Environment", str(alert.environment)))
    if alert.backup_id:
        facts.append(("Backup", alert.backup.name))
    facts += [
        ("Kind", alert.get_kind_display()),
        ("Severity", alert.get_severity_display()),
        ("First seen", f"{alert.first_seen_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"),
        ("Occurrences", str(alert.occurrences)),
        ("Alert id", str(alert.pk)),
    ]
    lines = [title, ""]
    if alert.message:
        lines += [alert.message, ""]
    lines += [f"{label + ':':<14}{value}" for label, value in facts]
    lines += [
        "",
        "You receive this because this address is a notification channel of "
        f"{alert.organisation.name} in Strongbox.",
    ]
    return subject, "\n".join(lines) + "\n"


def send(*, channel, alert) -> DeliveryResult:
    subject, body = render(alert)
    # Django's SMTP backend waits forever unless told otherwise (EMAIL_TIMEOUT has a default).
    timeout = settings.EMAIL_TIMEOUT
    try:
        send_mail(
            subject,
            body,
            None,  # DEFAULT_FROM_EMAIL
            [channel.target],
            connection=get_connection(timeout=timeout),
        )
    except smtplib.SMTPRecipientsRefused as exc:
        return DeliveryResult(ok=False, error=f"Recipient refused: {exc.recipients}")
    except (smtplib.SMTPException, OSError) as exc:
        return DeliveryResult(ok=False, error=f"{type(exc).__name__}: {exc}", retry=True)
    return DeliveryResult(ok=True)
