"""Email notifications through Django's mail framework (``EMAIL_*`` settings)."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import get_connection, send_mail
from django.core.validators import validate_email

from alerts.notifiers import DeliveryResult
from alerts.notifiers import render as _render

MAX_RECIPIENTS = 50


def render(alert, event: str = "raised") -> tuple[str, str]:
    """The subject and plain-text body of the email for ``alert``."""
    return _render(alert, event)


def validate(*, organisation, url: str, recipients: list[str], secret: str) -> dict:
    problems: dict[str, list[str]] = {}
    if not recipients:
        problems["recipients"] = ["An email channel needs at least one recipient."]
    elif len(recipients) > MAX_RECIPIENTS:
        problems["recipients"] = [f"At most {MAX_RECIPIENTS} recipients."]
    else:
        for address in recipients:
            try:
                validate_email(address)
            except ValidationError:
                problems.setdefault("recipients", []).append(
                    f"{address!r} is not a valid email address."
                )
    if url:
        problems["url"] = ["An email channel has recipients, not a URL."]
    if secret:
        problems["secret"] = ["Only a webhook channel has a secret."]
    return problems


def send(*, channel, alert, event: str = "raised") -> DeliveryResult:
    subject, body = render(alert, event)
    # Django's SMTP backend waits forever unless told otherwise (EMAIL_TIMEOUT has a default).
    timeout = settings.EMAIL_TIMEOUT
    try:
        send_mail(
            subject,
            body,
            None,  # DEFAULT_FROM_EMAIL
            list(channel.recipients),
            connection=get_connection(timeout=timeout),
        )
    except smtplib.SMTPRecipientsRefused as exc:
        return DeliveryResult(ok=False, error=f"Recipient refused: {exc.recipients}")
    except (smtplib.SMTPException, OSError) as exc:
        return DeliveryResult(ok=False, error=f"{type(exc).__name__}: {exc}", retry=True)
    return DeliveryResult(ok=True)
