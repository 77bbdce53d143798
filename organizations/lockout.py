"""Sign-in lockout after repeated wrong passwords: django-axes, and what Strongbox adds.

django-axes records each failed sign-in (the form, the admin and ``/api/auth/token`` all
call ``authenticate(request, …)``) and its backend, first in ``AUTHENTICATION_BACKENDS``,
refuses a locked-out client before any password is hashed. Strongbox adds:

- Two bounds (``LockoutHandler``): failures of one username from one address
  (``STRONGBOX_LOGIN_FAILURE_LIMIT``) and failures of any usernames from one address
  (``STRONGBOX_LOGIN_ADDRESS_FAILURE_LIMIT``, higher: an office behind one NAT). axes
  counts every lockout parameter against one limit; the handler gives each its own.
- A success forgets only that username's failures from that address: signing in to one's
  own account does not wipe a guesser's count of others' from the same address.
- The answers: the sign-in form (or the admin's) again with the lockout message and
  ``Retry-After`` (``lockout_response``, axes' lockout callable), and a 429 in the API's
  error body (``LoginLockedOut``).

A lockout ends once no failure counted in it is younger than the cool-off
(``STRONGBOX_LOGIN_COOLOFF_MINUTES``); tries during a lockout are not counted, so it ends
when ``Retry-After`` says. Administrators see and lift lockouts in the Django admin
(*Access attempts*: delete the rows) or with ``manage.py axes_reset_username``,
``axes_reset_ip``, ``axes_reset_ip_username`` and ``axes_reset``.
"""

from __future__ import annotations

import math
from datetime import datetime

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off, get_credentials
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Max, Sum
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from config.errors import ApplicationError


class LoginLockedOut(ApplicationError):
    """A sign-in refused by the lockout (``wait``: seconds until it ends, or None)."""

    status_code = 429
    code = "locked_out"

    def __init__(self, message: str, *, wait: int | None):
        super().__init__(message)
        self.wait = wait


class LockoutHandler(AxesDatabaseHandler):
    """axes' database handler with a limit per lockout parameter set (see the module)."""

    def counted(self, request, credentials=None) -> list[tuple[int, int, datetime | None]]:
        """Per bound (this username here, anyone here): its limit, the failures counted
        within the cool-off and the time of the youngest of them."""
        limits = (settings.AXES_FAILURE_LIMIT, settings.STRONGBOX_LOGIN_ADDRESS_FAILURE_LIMIT)
        rows = []
        bounds = zip(limits, self.get_user_attempts(request, credentials), strict=True)
        for limit, attempts in bounds:
            found = attempts.aggregate(n=Sum("failures_since_start"), t=Max("attempt_time"))
            rows.append((limit, found["n"] or 0, found["t"]))
        return rows

    def get_failures(self, request, credentials=None) -> int:
        # axes compares this with AXES_FAILURE_LIMIT, the per-pair limit: the address's own,
        # higher bound is reported as that limit once reached.
        (pair_limit, of_pair, _), (address_limit, of_address, _) = self.counted(
            request, credentials
        )
        if 0 < address_limit <= of_address:
            return max(of_pair, pair_limit)
        return of_pair

    def reset_user_attempts(self, request, credentials=None) -> int:
        username = get_client_username(request, credentials)
        attempts = AccessAttempt.objects.filter(
            username=username, ip_address=request.axes_ip_address
        )
        count, _ = attempts.delete()
        return count


# axes' column; the sign-in forms bound no username length before authenticating.
_USERNAME_COLUMN = AccessAttempt._meta.get_field("username").max_length


def attempted_username(request, credentials=None) -> str | None:
    """The username a sign-in tried, cut to what axes can store (axes' username callable:
    a longer one is nobody's, and stored whole it failed the insert on PostgreSQL)."""
    field = settings.AXES_USERNAME_FORM_FIELD
    if credentials:
        username = credentials.get(field)
    else:
        username = getattr(request, "data", request.POST).get(field)
    return username[:_USERNAME_COLUMN] if isinstance(username, str) else username


def seconds_until_unlocked(request, credentials=None) -> int | None:
    """When the lockout surely ends: the cool-off after the youngest failure counted in it
    (None: a lockout without cool-off lasts until an administrator lifts it)."""
    cool_off = get_cool_off(request)
    if cool_off is None:
        return None
    counted = AxesProxyHandler.get_implementation().counted(request, credentials)
    reached = [youngest for limit, failures, youngest in counted if 0 < limit <= failures]
    if not reached:
        return 0
    return max(0, math.ceil((max(reached) + cool_off - timezone.now()).total_seconds()))


def lockout_message(wait: int | None) -> str:
    if wait is None:
        return (
            "Too many failed sign-ins from your address. An administrator must lift the "
            "lockout before you can sign in."
        )
    minutes = max(1, math.ceil(wait / 60))
    return (
        "Too many failed sign-ins from your address. Try again in "
        f"{minutes} minute{'s' if minutes != 1 else ''}."
    )


def login_locked_out(request, credentials=None) -> LoginLockedOut | None:
    """The API's answer when this sign-in was refused by, or has just set off, a lockout."""
    if not getattr(request, "axes_locked_out", False):
        return None
    credentials = credentials or getattr(request, "axes_credentials", None)
    wait = seconds_until_unlocked(request, credentials)
    return LoginLockedOut(lockout_message(wait), wait=wait)


def login_failures_forget(request, *, username: str) -> None:
    """After a success outside Django's ``login()`` (a JWT): forget this username's failures
    from this address, as ``login()`` does through axes."""
    if settings.AXES_ENABLED and settings.AXES_RESET_ON_SUCCESS:
        AxesProxyHandler.update_request(request)
        AxesProxyHandler.get_implementation().reset_user_attempts(
            request, get_credentials(username)
        )


def lockout_response(request, original_response=None, credentials=None):
    """axes' lockout callable for the HTML sign-ins: the same form again, with the message.

    axes' asynchronous middleware passes the credentials where the response belongs, so
    they are read from the request, where axes also keeps them.
    """
    credentials = getattr(request, "axes_credentials", None) or {}
    username = get_client_username(request, credentials) or ""
    wait = seconds_until_unlocked(request, credentials)
    message = lockout_message(wait)
    if request.path.startswith(reverse("admin:index")):
        form = AdminAuthenticationForm(request, initial={"username": username})
        template = "admin/login.html"
        context = {
            **admin.site.each_context(request),
            "title": "Log in",
            "app_path": request.get_full_path(),
            REDIRECT_FIELD_NAME: request.POST.get(REDIRECT_FIELD_NAME, reverse("admin:index")),
        }
    else:
        form = AuthenticationForm(request, initial={"username": username})
        template = "login.html"
        context = {"next": request.POST.get(REDIRECT_FIELD_NAME, "")}
    # Both pages show the request's messages above the form.
    messages.error(request, message)
    response = render(request, template, {**context, "form": form}, status=429)
    if wait is not None:
        response["Retry-After"] = str(wait)
    return response
