"""Webhook notifications: a signed JSON POST.

What a receiver gets::

    POST <channel URL>
    Content-Type: application/json
    User-Agent: Strongbox-Webhook/1
    X-Strongbox-Event: alert.raised | alert.resolved | test
    X-Strongbox-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the channel secret>

    {"event": "alert.raised", "sent_at": "...", "alert": {"id": ..., "kind": ..., ...}}

To verify, compute ``hmac.new(secret, raw_body, sha256).hexdigest()`` over the body bytes
exactly as received (before any JSON parsing) and compare it with the header in constant
time. ``sent_at`` is inside the signed body, so a receiver can also refuse old replays.
A channel without a secret sends no signature header.

Any 2xx is success. Redirects are not followed (a 3xx is a failure). Timeouts, connection
errors, 408, 429 and 5xx are retried with backoff by the caller; other 4xx are not.

The URL's host must satisfy the organisation's host policy (``organizations.hostpolicy``)
as it resolves at send time, and the request goes to the address that was checked (TLS
still verifies the name), so DNS that changes after the check cannot redirect it. A host
the policy refuses is not retried.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from alerts.notifiers import DeliveryResult
from organizations.hostpolicy import (
    HostNotAllowed,
    HostUnresolved,
    check_url,
    host_rules,
    normalise_name,
    url_host_port,
    url_problem,
)

SIGNATURE_HEADER = "X-Strongbox-Signature"
RETRYABLE_STATUSES = {408, 429}
EVENTS = {"raised": "alert.raised", "resolved": "alert.resolved", "test": "test"}
MAX_URL_LENGTH = 2000


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would turn the POST into a GET and could lead anywhere; the receiver
    # should be configured with its final URL instead.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _pinned_connector(host: str, addresses: list[str]):
    """A replacement for ``socket.create_connection`` that connects to ``host`` only at the
    checked ``addresses`` (a proxy from the environment is connected to as usual)."""

    def connect(address, timeout, source_address=None):
        target, port = address
        if normalise_name(target) != normalise_name(host) or not addresses:
            return socket.create_connection(address, timeout, source_address)
        error: OSError | None = None
        for ip in addresses:
            try:
                return socket.create_connection((ip, port), timeout, source_address)
            except OSError as exc:
                error = exc
        raise error  # type: ignore[misc] - addresses is not empty

    return connect


def _pinned(connection_class, connect):
    def build(*args, **kwargs):
        connection = connection_class(*args, **kwargs)
        connection._create_connection = connect  # what http.client's connect() calls
        return connection

    return build


class _PinnedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, connect):
        super().__init__()
        self._connect = connect

    def http_open(self, req):
        return self.do_open(_pinned(http.client.HTTPConnection, self._connect), req)


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, connect):
        super().__init__()
        self._connect = connect

    def https_open(self, req):
        connection = _pinned(http.client.HTTPSConnection, self._connect)
        return self.do_open(connection, req, context=self._context)


def _opener_for(host: str, addresses: list[str]):
    connect = _pinned_connector(host, addresses)
    return urllib.request.build_opener(
        _NoRedirects, _PinnedHTTPHandler(connect), _PinnedHTTPSHandler(connect)
    )


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


def validate(*, organisation, url: str, recipients: list[str], secret: str) -> dict:
    problems: dict[str, list[str]] = {}
    if not url:
        problems["url"] = ["A webhook channel needs its http:// or https:// URL."]
    elif len(url) > MAX_URL_LENGTH:
        problems["url"] = [f"At most {MAX_URL_LENGTH} characters."]
    elif problem := url_problem(organisation, url):
        problems["url"] = [problem]
    if recipients:
        problems["recipients"] = ["A webhook channel has a URL, not recipients."]
    return problems


def send(*, channel, alert, event: str = "raised") -> DeliveryResult:
    url = channel.url
    if urlsplit(url).scheme not in ("http", "https"):
        return DeliveryResult(ok=False, error=f"Not an http(s) URL: {url!r}.")
    try:
        addresses = check_url(host_rules(channel.organisation_id), url)
    except HostNotAllowed as exc:
        # A name that does not resolve may resolve later; a refused host will not change.
        return DeliveryResult(ok=False, error=str(exc), retry=isinstance(exc, HostUnresolved))
    opener = _opener_for(url_host_port(url)[0], addresses)
    name = EVENTS[event]
    body = json.dumps(payload(alert, event=name), separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Strongbox-Webhook/1",
        "X-Strongbox-Event": name,
    }
    if channel.secret:
        headers[SIGNATURE_HEADER] = sign(body, channel.secret)
    timeout = settings.STRONGBOX_WEBHOOK_TIMEOUT_SECONDS
    # The scheme was checked above, so urllib cannot be pointed at file:// or ftp://.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as response:
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
