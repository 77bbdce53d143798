"""Notification integrations: one small module per channel kind, loaded by kind.

Each module has

- ``send(*, channel, alert, event) -> DeliveryResult``: ``event`` is ``raised``,
  ``resolved`` or ``test`` (a test message is about an unsaved example alert). It reports
  failures in the result instead of raising, and says whether another attempt later could
  help (a timeout or a 503 may; a refused address or a 400 will not);
- ``validate(*, organisation, url, recipients, secret) -> dict[str, list[str]]``: what is
  wrong with a channel of that kind, by field (``url``, ``recipients``, ``secret``), before
  it is saved. The services call it for the API, the pages and the admin alike.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import UTC
from types import ModuleType

NOTIFIERS = {
    "email": "alerts.notifiers.email",
    "webhook": "alerts.notifiers.webhook",
    "apprise": "alerts.notifiers.apprise",
}


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    status_code: int | None = None
    error: str = ""
    retry: bool = False


def notifier_for(kind: str) -> ModuleType:
    try:
        return importlib.import_module(NOTIFIERS[kind])
    except KeyError:
        raise ValueError(f"No notifier for channel kind {kind!r}.") from None


def render(alert, event: str = "raised") -> tuple[str, str]:
    """The title and plain-text body of a notice of ``alert`` (email, apprise)."""
    title = " ".join(alert.title.split())  # a header cannot hold a newline
    if event == "resolved":
        heading = "Resolved"
    elif event == "test":
        heading = "Test"
    else:
        heading = alert.get_severity_display()
    subject = f"[Strongbox] {heading}: {title}"
    facts = [("Organisation", alert.organisation.name)]
    if alert.environment_id:
        facts.append(("Environment", str(alert.environment)))
    if alert.backup_id:
        facts.append(("Backup", alert.backup.name))
    facts += [
        ("Kind", alert.get_kind_display()),
        ("Severity", alert.get_severity_display()),
        ("First seen", f"{alert.first_seen_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"),
    ]
    if alert.resolved_at:
        facts.append(("Resolved", f"{alert.resolved_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"))
    facts += [("Occurrences", str(alert.occurrences)), ("Alert id", str(alert.pk))]
    lines = [title, ""]
    if event == "resolved":
        lines += ["This alert is resolved: what caused it has since succeeded.", ""]
    if alert.message:
        lines += [alert.message, ""]
    lines += [f"{label + ':':<14}{value}" for label, value in facts]
    lines += [
        "",
        "You receive this because this is a notification channel of "
        f"{alert.organisation.name} in Strongbox.",
    ]
    return subject, "\n".join(lines) + "\n"
