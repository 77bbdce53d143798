"""Writes to the audit log: record an event, record sign-ins, purge past retention.

Every app's services call ``audit_record`` where the action happens (so the API, the
pages, the admin and the commands are all recorded the same way); the actor and the
client's address come from ``audit.context``, never from an argument the caller could
forget. Details never hold secrets: ``masked`` replaces the values of secret-looking keys
and the credentials inside URLs before anything is stored.

This module imports no other app (the organisation is a reference by name), so the
lowest app, ``organizations``, records its own actions through it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from audit.actions import ACTIONS
from audit.context import Actor, actor_of, current_actor, current_ip
from audit.models import ActorType, AuditEvent, Outcome

MASK = "********"
# Keys whose values are secrets wherever they appear in details (``password``,
# ``secret_access_key``, ``token``, ``identity``…); ids, prefixes and fingerprints are not.
_SECRET_KEY = re.compile(r"pass|secret|token|credential|private|identity|api_?key|(^|_)key$", re.I)
# ...except these ids, which are credentials themselves (S3's, Strongbox treats them as secret).
_ALWAYS_SECRET = re.compile(r"access_key_id$", re.I)
_NOT_SECRET = re.compile(r"(_id|_ids|_prefix|fingerprint|_name|_count)$", re.I)
_URL_WITH_USERINFO = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s@]+@", re.I)
# Values that are secrets whatever their key: age identities, Strongbox API tokens.
_SECRET_VALUE = re.compile(r"AGE-SECRET-KEY-|^sbx_[A-Za-z0-9_-]{16,}")
PURGE_BATCH = 5000


@dataclass(frozen=True)
class AuditObject:
    """What an event is about, when it is not (or no longer) a model instance."""

    type: str
    id: str = ""
    name: str = ""


# Model names as the log spells them.
_TYPE_NAMES = {"apitoken": "token", "pathgrant": "path_grant", "notificationchannel": "channel"}


def audit_object(obj) -> AuditObject | None:
    if obj is None or isinstance(obj, AuditObject):
        return obj
    model_name = obj._meta.model_name
    name = getattr(obj, "name", None) or getattr(obj, "path", None) or str(obj)
    return AuditObject(_TYPE_NAMES.get(model_name, model_name), str(obj.pk), str(name)[:300])


def _masked_url(value: str) -> str:
    """A URL's password (or a lone user part, often a token) replaced by the mask."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return MASK
    if "@" not in parts.netloc:
        return value
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
    netloc = f"{user}:{MASK}@{host}" if user else f"{MASK}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def url_shown(value: str) -> str:
    """A URL as the log may show it: scheme and host only, for URLs whose path or query may
    carry a token (webhooks, apprise URLs)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return MASK
    if not parts.scheme or not parts.hostname:
        return value
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{rest}"


def masked(value: Any, key: str = "") -> Any:
    """``value`` with every secret replaced by ``MASK``: the values of secret-looking keys
    (at any depth) and credentials inside URLs."""
    if key and (
        _ALWAYS_SECRET.search(key) or (_SECRET_KEY.search(key) and not _NOT_SECRET.search(key))
    ):
        return MASK if value not in (None, "", [], {}) else value
    if isinstance(value, Mapping):
        return {str(k): masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [masked(v) for v in value]
    if isinstance(value, str) and _SECRET_VALUE.search(value):
        return MASK
    if isinstance(value, str) and _URL_WITH_USERINFO.search(value):
        return _masked_url(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def changes(before: Mapping, after: Mapping) -> dict:
    """``{"before": …, "after": …}`` of the keys whose values differ, masked."""
    keys = [key for key in {**before, **after} if before.get(key) != after.get(key)]
    return {
        "before": masked({key: before.get(key) for key in keys}),
        "after": masked({key: after.get(key) for key in keys}),
    }


def audit_record(
    *,
    organisation,
    action: str,
    obj=None,
    actor: Actor | None = None,
    ip: str | None = None,
    outcome: str = Outcome.SUCCESS,
    details: Mapping | None = None,
) -> AuditEvent:
    """Append one event. ``actor`` and ``ip`` default to the current request's
    (``audit.context``): the signed-in user or API token, else the system."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown audit action {action!r}; add it to audit.actions.ACTIONS.")
    return AuditEvent.objects.create(**_row(organisation, action, obj, actor, ip, outcome, details))


def _row(organisation, action, obj, actor, ip, outcome, details) -> dict:
    actor = actor or current_actor()
    target = audit_object(obj)
    return {
        "organisation_id": getattr(organisation, "pk", organisation),
        "action": action,
        "actor_type": actor.type,
        "actor_name": actor.name[:200],
        "actor_ref": actor.ref,
        "object_type": target.type if target else "",
        "object_id": target.id if target else "",
        "object_name": target.name if target else "",
        "ip": ip if ip is not None else current_ip(),
        "outcome": outcome,
        "details": masked(dict(details or {})),
    }


def _organisations_of(user) -> list:
    """A user's organisations, or ``[None]``: a sign-in is recorded once in each, so every
    organisation's administrators see its members' sign-ins."""
    if user is None or user.pk is None:
        return [None]
    ids = list(
        user.memberships.order_by("organisation_id").values_list("organisation_id", flat=True)
    )
    return ids or [None]


def _record_everywhere(organisations: Iterable, **fields) -> list[AuditEvent]:
    return AuditEvent.objects.bulk_create(
        AuditEvent(**_row(organisation, **fields)) for organisation in organisations
    )


def audit_sign_in(*, user, method: str, ip: str | None = None) -> list[AuditEvent]:
    """``auth.login`` of ``user`` (``method``: ``form``, ``admin``, ``jwt``…)."""
    return _record_everywhere(
        _organisations_of(user),
        action="auth.login",
        obj=AuditObject("user", str(user.pk), user.get_username()),
        actor=actor_of(user),
        ip=ip,
        outcome=Outcome.SUCCESS,
        details={"method": method},
    )


def audit_sign_in_failed(
    *, username: str, method: str, ip: str | None = None, locked_out: bool = False
) -> list[AuditEvent]:
    """``auth.login_failed`` for ``username``, in the organisations of the user of that
    name if there is one (the password tried is never seen here)."""
    username = (username or "")[:150]
    user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
    return _record_everywhere(
        _organisations_of(user),
        action="auth.login_failed",
        obj=AuditObject("user", str(user.pk) if user else "", username),
        actor=Actor(ActorType.USER, username or "(no username)", str(user.pk) if user else ""),
        ip=ip,
        outcome=Outcome.FAILURE,
        details={"method": method, "locked_out": locked_out, "known_user": user is not None},
    )


def audit_events_purge(*, now: datetime | None = None, days: int | None = None) -> int:
    """Delete the events older than the retention (``STRONGBOX_AUDIT_RETENTION_DAYS``), in
    batches so a long history never holds one huge transaction; how many went. 0 days
    keeps everything."""
    days = settings.STRONGBOX_AUDIT_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    purged = 0
    while True:
        batch = list(
            AuditEvent.objects.filter(at__lt=cutoff)
            .order_by("at")
            .values_list("pk", flat=True)[:PURGE_BATCH]
        )
        if not batch:
            return purged
        purged += AuditEvent.objects.filter(pk__in=batch)._purge()
