"""Every action the audit log records, named ``<object>.<verb>``.

The API's and the page's ``action`` filter accept these names, or a family such as
``backup.*``; anything else is a 400 naming the allowed values.
"""

from __future__ import annotations

ACTIONS: dict[str, str] = {
    "auth.login": "Signed in (form, admin or JWT)",
    "auth.login_failed": "Sign-in refused (wrong password, unknown user or locked out)",
    "token.create": "API token created",
    "token.revoke": "API token revoked",
    "membership.create": "Member added to the organisation",
    "membership.change": "Member's role changed",
    "membership.delete": "Member removed from the organisation",
    "backup.trigger": "Backup requested",
    "backup.abort": "Backup aborted",
    "backup.delete": "Backup deleted",
    "backup.download": "Backup artifact downloaded",
    "restore.request": "Restore requested",
    "restore.undo": "Restore undone",
    "schedule.create": "Schedule created (with its retention)",
    "schedule.update": "Schedule or retention changed (before and after)",
    "destination.create": "Destination created",
    "destination.update": "Destination changed",
    "destination.delete": "Destination deleted",
    "channel.create": "Notification channel created",
    "channel.update": "Notification channel changed",
    "channel.delete": "Notification channel deleted",
    "keys.rotate": "Stored secrets re-encrypted under the newest master key",
    "encryption.update": "age recipients or identity changed",
    "path_grant.create": "Server directory granted",
    "path_grant.revoke": "Server directory grant removed",
    "host_policy.set": "Host policy replaced",
    "organisation.two_factor": "Two-factor requirement of the members turned on or off",
    "two_factor.enable": "Two-factor authentication turned on for an account",
    "two_factor.disable": "Two-factor authentication turned off for an account",
}

FAMILIES = tuple(sorted({name.split(".")[0] for name in ACTIONS}))


def action_problem(value: str) -> str | None:
    """Why ``value`` is no action filter, or None: a known action or ``<family>.*``."""
    if value in ACTIONS:
        return None
    if value.endswith(".*") and value[:-2] in FAMILIES:
        return None
    allowed = ", ".join([*ACTIONS, *(f"{family}.*" for family in FAMILIES)])
    return f"Unknown action {value!r}; allowed values: {allowed}."
