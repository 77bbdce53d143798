"""Webhook notifications: a signed JSON POST.

What a receiver gets::

    POST <channel URL>
    Content-Type: application/json
    User-Agent: Strongbox-Webhook/1
    X-Strongbox-Event: alert.raised
    X-Strongbox-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the channel secret>

    {"event": "alert.raised", "sent_at": "...", "alert": {"id": ..., "kind": ..., ...}}

To verify, compute ``hmac.new(secret, raw_body, sha256).hexdigest()`` over the body bytes
exactly as received (before any JSON parsing) and compare it with the header in constant
time. ``sent_at`` is inside the signed body, so a receiver can also refuse old replays.
A channel without a secret sends no signature header.

Any 2xx is success. Redirects are not followed (a 3xx is a failure). Timeouts, connection
errors, 408, 429 and 5xx are retried with backoff by the caller; other 4xx are not.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from alerts.notifiers import DeliveryResult

SIGNATURE_HEADER = "X-Strongbox-Signature"
DEFAULT_TIMEOUT_SECONDS = 10
RETRYABLE_STATUSES = {408, 429}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would turn the POST into a GET and could lead anywhere; the receiver
    # should be configured with its final URL instead.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def sign(body: bytes, secret: str) -> str:
    """The value of the signature header for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def payload(alert, *, event: str = "alert.raised") -> dict:
    environment = alert.environment
    return {
        "event": event,
        "sent_at": timezone.now().isoformat(),
        "alert": {
            "id": str(alert.pk),
            "kind": alert.kind,
            "severity": alert.severity,
            "title": alert.title,
            "message": alert.message,
            "organisation": {"id": str(alert.organisation_id), "slug": alert.organisation.slug},
            "environment": (
                {"id": str(environment.pk), "name": str(environment)} if environment else None
            ),
            "backup_id": str(alert.backup_id) if alert.backup_id else None,
            "restore_id": str(alert.restore_id) if alert.restore_id else None,
            "dedup_key": alert.dedup_key,
            "occurrences": alert.occurrences,
            "first_seen_at": _iso(alert.first_seen_at),
            "last_seen_at": _iso(alert.last_seen_at),
            "resolved_at": _iso(alert.resolved_at),
        },
    }


def send(*, channel, alert) -> DeliveryResult:
    url = channel.target
    if urlsplit(url).scheme not in ("http", "https"):
        return DeliveryResult(ok=False, error=f"Not an http(s) URL: {url!r}.")
    body = json.dumps(payload(alert), separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Strongbox-Webhook/1",
        "X-Strongbox-Event": "alert.raised",
    }
    if channel.secret:
        headers[SIGNATURE_HEADER] = sign(body, channel.secret)
    timeout = getattr(settings, "STRONGBOX_WEBHOOK_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS)
    # The scheme was checked above, so urllib cannot be pointed at file:// or ftp://.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with _opener.open(request, timeout=timeout) as response:
            return DeliveryResult(ok=True, status_code=response.status)
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode(errors="replace").strip()
        exc.close()
        error = f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
        retry = exc.code >= 500 or exc.code in RETRYABLE_STATUSES
        return DeliveryResult(ok=False, status_code=exc.code, error=error, retry=retry)
    except urllib.error.URLError as exc:
        return DeliveryResult(ok=False, error=f"Cannot connect: {exc.reason}", retry=True)
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, bad responses
        return DeliveryResult(ok=False, error=f"{type(exc).__name__}: {exc}", retry=True)
