"""Real TOTP codes for the tests, computed from a device's key as an authenticator app does
(django-otp's own HOTP), and devices set up the way a user sets one up."""

from __future__ import annotations

import time

from django_otp.oath import hotp
from django_otp.plugins.otp_totp.models import TOTPDevice


def _now_step(device: TOTPDevice) -> int:
    return (int(time.time()) - device.t0) // device.step


def code_at(device: TOTPDevice, step: int) -> str:
    return f"{hotp(device.bin_key, step, digits=device.digits):0{device.digits}d}"


def current_code(device: TOTPDevice) -> str:
    """The code an app shows now."""
    return code_at(device, _now_step(device))


def fresh_code(device: TOTPDevice) -> str:
    """A code the device has not accepted yet: the current one, or, when that was used, the
    next step's (within django-otp's tolerance of one step), so two sign-ins in the same
    30 seconds each have their own code without waiting."""
    device.refresh_from_db()
    now = _now_step(device) + device.drift
    step = max(now, device.last_t + 1)
    assert step <= now + device.tolerance, "no unused code within the tolerance: wait a step"
    return code_at(device, step)


def wrong_code(device: TOTPDevice) -> str:
    """Six digits that are none of the codes the device would accept now."""
    now = _now_step(device) + device.drift
    accepted = {code_at(device, now + d) for d in range(-2, 3)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in accepted)


def enrolled(user) -> TOTPDevice:
    """A confirmed device for ``user``, as after the enrolment page."""
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
