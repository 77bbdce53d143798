"""Request rates of the API, and the one notion of a client's address.

DRF's throttles do the counting (in the default cache: Redis when ``REDIS_URL`` is set, so
every web process shares the counts). What is ours:

- ``client_address``: ``REMOTE_ADDR``, or the ``X-Forwarded-For`` entry added by the
  outermost of ``STRONGBOX_PROXY_COUNT`` trusted proxies (DRF's ``NUM_PROXIES`` rule); a
  value that is no IP address counts as ``REMOTE_ADDR``. The login lockout
  (``organizations.lockout``) uses the same function, so both agree on who a client is.
- The rates are read when a throttle is made, not when DRF was imported, so
  ``override_settings(REST_FRAMEWORK=…)`` in a test changes them.
- Requests made with an organisation API token count per token (DRF's user throttle would
  put every token in one bucket: a token's stand-in user has no primary key).
- ``BadTokenThrottle`` counts failed bearer authentications per address. DRF runs throttles
  after authentication, so a failed one never reaches them: the authentication class asks
  this throttle first and records its failures itself.
"""

from __future__ import annotations

import ipaddress

from rest_framework import throttling
from rest_framework.settings import api_settings


def client_address(request) -> str | None:
    """The address a request comes from, as far as the trusted proxies vouch for it."""
    remote_addr = request.META.get("REMOTE_ADDR")
    address = throttling.BaseThrottle().get_ident(request)
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return remote_addr


class _CurrentRates:
    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]

    def get_ident(self, request):
        return client_address(request)


class AnonRateThrottle(_CurrentRates, throttling.AnonRateThrottle):
    """Requests without credentials, per client address (``STRONGBOX_API_RATE_ANON``)."""


class UserRateThrottle(_CurrentRates, throttling.UserRateThrottle):
    """Requests per user, or per API token (``STRONGBOX_API_RATE_USER``)."""

    def get_cache_key(self, request, view):
        ident = getattr(request.user, "rate_limit_key", None)
        if ident is None:
            return super().get_cache_key(request, view)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class BadTokenThrottle(_CurrentRates, throttling.SimpleRateThrottle):
    """Failed bearer authentications per client address (``STRONGBOX_API_RATE_BAD_TOKEN``).

    ``exhausted`` refuses without counting; ``record_failure`` counts one failure.
    """

    scope = "bad_token"

    def get_cache_key(self, request, view=None):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def exhausted(self, request) -> bool:
        # DRF's check without its recording (allow_request records every allowed request).
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        self.history = [
            hit for hit in self.cache.get(self.key, []) if hit > self.now - self.duration
        ]
        return len(self.history) >= self.num_requests

    def record_failure(self, request) -> None:
        self.exhausted(request)
        self.throttle_success()
