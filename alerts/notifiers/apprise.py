"""Notifications through apprise (https://github.com/caronc/apprise): one URL reaches Slack,
Discord, Telegram, Microsoft Teams, ntfy, Gotify, Matrix, PagerDuty, Opsgenie, email and
about a hundred more services (``slack://…``, ``ntfys://ntfy.example.com/topic``,
``json://host/path`` …).

The channel holds one apprise URL; a notice is one ``notify`` of the plugin it parses to,
with the alert's title, the plain-text body the email carries, and apprise's notify type:
``failure`` for a critical alert, ``warning``, ``info``, and ``success`` for a resolved one.

Host policy. Some URLs name the host they post to (``json://``, ``ntfy://``, ``gotify://``,
``matrix://``, ``mailto://``): that host is checked when the channel is saved, as a webhook's
is. Others post to their service's own host (``slack://`` to hooks.slack.com), known only
to the plugin. At send time every name the plugin resolves, on this thread, is checked
against the organisation's policy (``organizations.hostpolicy.guarded_resolution``) and
the connection goes to the checked address: a refused host fails the delivery, and is not
retried. Link-local and cloud metadata addresses are refused whatever the policy.

apprise logs why a notice failed instead of raising; the log of the attempt is its error.
"""

from __future__ import annotations

import logging

import apprise
from django.conf import settings

from alerts.notifiers import DeliveryResult, render
from organizations.hostpolicy import guarded_resolution, host_problem, host_rules

MAX_URL_LENGTH = 2000
# Plugins that notify this server's own desktop or log: nothing a tenant should reach.
LOCAL_SCHEMES = {"dbus", "qt", "kde", "glib", "gnome", "macosx", "windows", "syslog"}
_TYPES = {
    "critical": apprise.NotifyType.FAILURE,
    "warning": apprise.NotifyType.WARNING,
    "info": apprise.NotifyType.INFO,
}


def _plugin(url: str):
    """The apprise plugin ``url`` parses to, or None."""
    try:
        return apprise.Apprise.instantiate(url, suppress_exceptions=True)
    except Exception:  # a plugin that chokes on its URL: not a URL it can notify
        return None


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _named_hosts(plugin) -> list[tuple[str, int | None]]:
    """The hosts a URL names itself (its ``host`` token; an email's SMTP server)."""
    hosts = []
    if "host" in getattr(plugin, "template_tokens", {}) and getattr(plugin, "host", None):
        hosts.append((plugin.host, plugin.port))
    smtp_host = getattr(plugin, "smtp_host", "")
    if smtp_host and smtp_host != getattr(plugin, "host", None):
        hosts.append((smtp_host, plugin.port))
    return hosts


def validate(*, organisation, url: str, recipients: list[str], secret: str) -> dict:
    problems: dict[str, list[str]] = {}
    if recipients:
        problems["recipients"] = ["An apprise channel has a URL, not recipients."]
    if secret:
        problems["secret"] = ["Only a webhook channel has a secret."]
    if not url:
        problems["url"] = ["An apprise channel needs its apprise URL (slack://…, ntfy://…)."]
        return problems
    if len(url) > MAX_URL_LENGTH:
        problems["url"] = [f"At most {MAX_URL_LENGTH} characters."]
        return problems
    plugin = _plugin(url) if _scheme(url) not in LOCAL_SCHEMES else None
    if plugin is None:
        problems["url"] = [
            "Not an apprise URL that Strongbox can notify: see "
            "https://github.com/caronc/apprise/wiki for the services and their URLs."
        ]
        return problems
    for host, port in _named_hosts(plugin):
        if problem := host_problem(organisation, host, port):
            problems["url"] = [problem]
            break
    return problems


def send(*, channel, alert, event: str = "raised") -> DeliveryResult:
    plugin = _plugin(channel.url) if _scheme(channel.url) not in LOCAL_SCHEMES else None
    if plugin is None:
        return DeliveryResult(ok=False, error="The channel's URL is not an apprise URL.")
    # apprise's own timeouts (the URL's cto/rto) are short; never longer than a webhook's.
    limit = settings.STRONGBOX_WEBHOOK_TIMEOUT_SECONDS
    plugin.socket_connect_timeout = min(plugin.socket_connect_timeout or limit, limit)
    plugin.socket_read_timeout = min(plugin.socket_read_timeout or limit, limit)
    title, body = render(alert, event)
    kind = apprise.NotifyType.SUCCESS if event == "resolved" else _TYPES[alert.severity]
    rules = host_rules(channel.organisation_id)
    with (
        apprise.LogCapture(level=logging.WARNING) as log,
        guarded_resolution(rules) as guard,
    ):
        try:
            ok = plugin.notify(body=body, title=title, notify_type=kind)
        except Exception as exc:  # a plugin's bug is one failed attempt, retried
            return DeliveryResult(ok=False, error=f"{type(exc).__name__}: {exc}", retry=True)
    if guard.refused:
        return DeliveryResult(ok=False, error=guard.refused)
    if ok:
        return DeliveryResult(ok=True)
    error = " ".join(log.getvalue().split())[:2000] or "apprise reported a failed notice."
    return DeliveryResult(ok=False, error=error, retry=True)
