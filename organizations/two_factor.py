"""Two-factor authentication of local accounts (TOTP, django-otp), and the organisations
that require it of their members.

- A user has at most one TOTP device. Enrolment creates it unconfirmed
  (``totp_device_start``); it counts only once a code from it has been entered
  (``totp_device_confirm``), and it is removed only with a current code
  (``totp_device_remove``). Confirming it also gives ten one-time recovery codes
  (``recovery_codes_create``, django-otp's static device), shown once and stored as
  digests; each one is accepted once wherever a code is, for the day the phone is lost.
- Signing in (``organizations.views.SignInView``): a local account with a confirmed device
  is not signed in by its password. The session holds a pending sign-in
  (``sign_in_pending_*``, five minutes) until ``code_check`` accepts a code; only then does
  Django's ``login()`` run, and django-otp's ``login`` marks the session verified. Each wrong
  code is a failed sign-in for django-axes, the same lockout as wrong passwords
  (``organizations/lockout.py``), and the device also waits longer after each one
  (django-otp's throttling, ``OTP_TOTP_THROTTLE_FACTOR``). A code that was already used is
  refused: django-otp keeps the last time step accepted.
- A session is verified when django-otp recorded the device that passed
  (``request.user.is_verified()``); a JWT when it was issued with a code (its ``otp`` claim,
  ``organizations.authentication``). Organisation API tokens are not people: unaffected.
- ``requirement``: what a caller must do before acting in an organisation. A local account
  with a device must be verified wherever it acts (a session signed in with the password
  alone, through the admin's form or before enrolling elsewhere, is not). An organisation
  with ``require_two_factor`` needs every member verified *when acting in it*, also those
  signed in by SSO (they skip local TOTP at sign-in and are unverified there); the same
  person acting in another organisation that does not require it is not asked.
  ``organizations.tenancy`` applies it to every page (a redirect to ``/account/two-factor/``)
  and every API request made with a session or a JWT (a 403, ``two_factor_required``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import re
import secrets
from dataclasses import dataclass
from io import BytesIO

import django_otp
import qrcode
import qrcode.image.svg
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.services import AuditObject, audit_record
from config.errors import ApplicationError, Conflict, Forbidden, InvalidInput, NotFound
from organizations.models import Membership, Organisation

log = logging.getLogger("strongbox.audit")

PENDING_SESSION_KEY = "strongbox_two_factor_pending"
PENDING_SECONDS = 5 * 60
DEVICE_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
RECOVERY_CODES = 10
ENROL = "enrol"
VERIFY = "verify"
# Sessions these backends signed in are local accounts' (a password here); others (SSO)
# skip the local code at sign-in. Django's own is kept for sessions from before
# LocalPasswordBackend replaced it.
LOCAL_BACKENDS = frozenset(
    {"organizations.oidc.LocalPasswordBackend", "django.contrib.auth.backends.ModelBackend"}
)
_CODE = re.compile(r"[0-9]{6}")
# Ten hex digits in two groups of five (40 bits each, against an online guess limited by
# the lockout); stored as the first 16 hex digits of their SHA-256 (StaticToken's column).
_RECOVERY = re.compile(r"[0-9a-f]{5}-?[0-9a-f]{5}")


class TwoFactorRequired(Forbidden):
    """Acting here needs a session or token verified with a one-time code."""

    code = "two_factor_required"


class InvalidCode(ApplicationError):
    """A one-time code that was wrong, already used, or tried while the device waits."""

    status_code = 401
    code = "invalid_otp"


# --- devices -------------------------------------------------------------------------


def confirmed_device(user) -> TOTPDevice | None:
    if not getattr(user, "pk", None):
        return None
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).first()


def unconfirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).first()


def secret_of(device: TOTPDevice) -> str:
    """The key in base32, as authenticator apps take it typed in (groups of four)."""
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_svg(device: TOTPDevice) -> str:
    """The device's ``otpauth://`` URL as an inline SVG QR code (drawn here, no request out)."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage)
    out = BytesIO()
    image.save(out)
    svg = out.getvalue().decode()
    return svg[svg.index("<svg") :]  # without the XML declaration, for inlining


def _normalised(code) -> str:
    # Authenticator apps show "123 456"; anything but six ASCII digits is simply wrong
    # (int() would take other scripts' digits and surrounding signs).
    code = re.sub(r"\s+", "", code) if isinstance(code, str) else ""
    return code if _CODE.fullmatch(code) else "-"


def _verify(device: TOTPDevice, code) -> bool:
    # django-otp's verify_token locks the device's row, refuses a replayed time step and
    # counts the failure for its throttling.
    return django_otp.verify_token(device.user, device.persistent_id, _normalised(code)) is not None


def _recovery_digest(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").encode()).hexdigest()[:16]


def recovery_device(user) -> StaticDevice | None:
    return StaticDevice.objects.filter(user_id=user.pk, name=RECOVERY_NAME).first()


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user_id=user.pk, device__name=RECOVERY_NAME).count()


@transaction.atomic
def recovery_codes_create(*, user) -> list[str]:
    """Ten new one-time recovery codes (the earlier ones stop working), returned once:
    only their digests are stored."""
    if confirmed_device(user) is None:
        raise Conflict("Turn two-factor authentication on first.")
    StaticDevice.objects.filter(user_id=user.pk).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)
        codes.append(f"{raw[:5]}-{raw[5:]}")
    StaticToken.objects.bulk_create(
        StaticToken(device=device, token=_recovery_digest(code)) for code in codes
    )
    log.info("new recovery codes for user %s", user.get_username())
    return codes


def _verify_any(user, code) -> TOTPDevice | StaticDevice | None:
    """The device that accepts ``code``: the TOTP device for six digits, the recovery codes
    (each used up by its first use) for a recovery code."""
    text = re.sub(r"\s+", "", code).lower() if isinstance(code, str) else ""
    if _RECOVERY.fullmatch(text):
        device = recovery_device(user)
        if device is None:
            return None
        digest = _recovery_digest(text)
        return django_otp.verify_token(user, device.persistent_id, digest)
    device = confirmed_device(user)
    return device if device is not None and _verify(device, code) else None


def device_wait_seconds(device: TOTPDevice | None) -> int:
    """How long the device refuses to check codes after wrong ones (0: it checks now)."""
    if device is None:
        return 0
    allowed, details = device.verify_is_allowed()
    if allowed or not details or not details.get("locked_until"):
        return 0
    return max(1, math.ceil((details["locked_until"] - timezone.now()).total_seconds()))


def wrong_code_message(device: TOTPDevice | None) -> str:
    wait = device_wait_seconds(device)
    if wait:
        return (
            f"Too many wrong codes: wait {wait} second{'s' if wait != 1 else ''}, "
            "then enter the current code."
        )
    return "That code is not right, or was already used. Enter the current code from your app."


@transaction.atomic
def totp_device_start(*, user) -> TOTPDevice:
    """A new, unconfirmed device (a new key) for enrolment; replaces an earlier unconfirmed
    one. Refused while a confirmed device exists: that one is removed with a code first."""
    if confirmed_device(user) is not None:
        raise Conflict("Two-factor authentication is already on.")
    TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


@transaction.atomic
def totp_device_confirm(*, user, code) -> TOTPDevice:
    """The unconfirmed device counts from now on, if ``code`` is one of its codes."""
    device = unconfirmed_device(user)
    if device is None:
        raise NotFound("Start the set-up first: no device is waiting for a code.")
    if not _verify(device, code):
        raise InvalidCode(wrong_code_message(device), fields={"otp_token": ["Wrong code."]})
    device.refresh_from_db()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    log.info("two-factor enabled for user %s", user.get_username())
    _audit_account(user, "two_factor.enable")
    return device


def organisations_requiring(user) -> list[Organisation]:
    """The organisations of the user's memberships that require two-factor."""
    return [
        m.organisation
        for m in Membership.objects.filter(
            user_id=user.pk, organisation__require_two_factor=True
        ).select_related("organisation")
    ]


@transaction.atomic
def totp_device_remove(*, user, code) -> None:
    """Turn two-factor off, with a current code; refused while an organisation of the
    user's requires it (they would be locked out of it at once)."""
    device = confirmed_device(user)
    if device is None:
        raise NotFound("Two-factor authentication is not on.")
    if required := organisations_requiring(user):
        names = ", ".join(o.name for o in required)
        raise Conflict(
            f"{names} require{'s' if len(required) == 1 else ''} two-factor "
            "authentication of its members: it cannot be turned off."
        )
    if _verify_any(user, code) is None:
        raise InvalidCode(wrong_code_message(device), fields={"otp_token": ["Wrong code."]})
    TOTPDevice.objects.filter(user_id=user.pk).delete()
    StaticDevice.objects.filter(user_id=user.pk).delete()
    log.info("two-factor disabled for user %s", user.get_username())
    _audit_account(user, "two_factor.disable")


def _audit_account(user, action: str) -> None:
    """An account's change, in the audit log of each organisation it belongs to."""
    account = AuditObject("user", str(user.pk), user.get_username())
    organisations = list(
        Organisation.objects.filter(memberships__user_id=user.pk).values_list("pk", flat=True)
    )
    for organisation in organisations or [None]:
        audit_record(organisation=organisation, action=action, obj=account)


# --- the second step of signing in -----------------------------------------------------


@dataclass(frozen=True)
class PendingSignIn:
    user: object
    backend: str
    next_url: str


def sign_in_pending_set(request, *, user, backend: str, next_url: str) -> None:
    """Remember a right password while the code is asked for (nobody is signed in yet)."""
    request.session[PENDING_SESSION_KEY] = {
        "user": str(user.pk),
        "backend": backend,
        "next": next_url,
        "at": timezone.now().timestamp(),
    }


def sign_in_pending(request) -> PendingSignIn | None:
    """The pending sign-in of this session, unless it expired or its user is gone."""
    pending = request.session.get(PENDING_SESSION_KEY)
    if not isinstance(pending, dict):
        return None
    if timezone.now().timestamp() - float(pending.get("at", 0)) > PENDING_SECONDS:
        sign_in_pending_clear(request)
        return None
    user = get_user_model().objects.filter(pk=pending.get("user"), is_active=True).first()
    if user is None:
        sign_in_pending_clear(request)
        return None
    return PendingSignIn(user=user, backend=pending["backend"], next_url=pending.get("next", ""))


def sign_in_pending_clear(request) -> None:
    request.session.pop(PENDING_SESSION_KEY, None)


def _credentials(user) -> dict:
    return {settings.AXES_USERNAME_FORM_FIELD: user.get_username()}


def code_check(request, *, user, code) -> TOTPDevice | StaticDevice | None:
    """The user's device that accepts ``code`` (the current TOTP code, or an unused recovery
    code); None otherwise.

    A sign-in's code counts like its password: refused without a look while this username
    (or address) is locked out, and each wrong one a failed sign-in for django-axes.
    ``request.axes_locked_out`` is then set when the lockout applies; the HTML sign-in's
    middleware turns that into the lockout page, the API into its 429.
    """
    credentials = _credentials(user)
    if settings.AXES_ENABLED and not AxesProxyHandler.is_allowed(request, credentials):
        request.axes_locked_out = True
        request.axes_credentials = credentials
        return None
    if (device := _verify_any(user, code)) is not None:
        return device
    user_login_failed.send(sender=__name__, credentials=credentials, request=request)
    return None


# --- what acting in an organisation needs ------------------------------------------------


def session_is_local(request) -> bool:
    return request.session.get(BACKEND_SESSION_KEY) in LOCAL_BACKENDS


def requirement(*, user, organisation: Organisation | None, verified: bool, local: bool):
    """``None`` (go ahead), ``VERIFY`` (enter a code first) or ``ENROL`` (set a device up)."""
    if verified or not getattr(user, "pk", None):
        return None
    needed = organisation is not None and organisation.require_two_factor
    if not local and not needed:
        return None
    has_device = confirmed_device(user) is not None
    if has_device:
        return VERIFY
    return ENROL if needed else None


def session_requirement(request, organisation: Organisation | None):
    """What the session's user must do before acting in ``organisation`` (pages)."""
    user = request.user
    verified = bool(getattr(user, "is_verified", lambda: False)())
    return requirement(
        user=user, organisation=organisation, verified=verified, local=session_is_local(request)
    )


def api_require(request, organisation: Organisation, *, jwt_otp: bool | None) -> None:
    """Raise ``TwoFactorRequired`` when this API caller (a session, or a JWT whose ``otp``
    claim is ``jwt_otp``) may not act in ``organisation`` yet."""
    if jwt_otp is None:
        need = session_requirement(request, organisation)
    else:
        # A JWT was judged when issued: with a code when its user had a device.
        need = None if jwt_otp or not organisation.require_two_factor else ENROL
    if need is None:
        return
    if jwt_otp is not None:
        message = (
            f"{organisation.name} requires two-factor authentication: set it up at "
            "/account/two-factor/, then request a token with your one-time code (otp)."
        )
    elif need == ENROL:
        message = (
            f"{organisation.name} requires two-factor authentication: set it up at "
            "/account/two-factor/ first."
        )
    else:
        message = (
            "This session was not verified with a one-time code: enter one at "
            "/account/two-factor/ first."
        )
    raise TwoFactorRequired(message)


# --- the organisation's setting ------------------------------------------------------------


def organisation_two_factor_set(*, organisation: Organisation, required: bool, actor) -> bool:
    """Require (or stop requiring) two-factor of the organisation's members; True when it
    changed. Members without a device are sent to enrolment on their next request there."""
    if not isinstance(required, bool):
        raise InvalidInput(
            "require_two_factor: must be true or false.",
            fields={"require_two_factor": ["Must be a boolean."]},
        )
    changed = (
        Organisation.objects.filter(pk=organisation.pk)
        .exclude(require_two_factor=required)
        .update(require_two_factor=required)
    )
    organisation.require_two_factor = required
    if changed:
        requirement_changed_log(organisation=organisation, actor=actor)
    return bool(changed)


def requirement_changed_log(*, organisation: Organisation, actor) -> None:
    """The audit event (and log line) of a change of the requirement (the settings page,
    the admin)."""
    required = organisation.require_two_factor
    audit_record(
        organisation=organisation,
        action="organisation.two_factor",
        obj=organisation,
        details={
            "before": {"requireTwoFactor": not required},
            "after": {"requireTwoFactor": required},
        },
    )
    log.warning(
        "organisation %s: two-factor %s by %s",
        organisation.slug,
        "required" if organisation.require_two_factor else "no longer required",
        getattr(actor, "username", actor),
    )


def members_two_factor(organisation: Organisation) -> list[tuple[Membership, bool]]:
    """Each member and whether they have a confirmed device (two queries)."""
    members = list(
        Membership.objects.filter(organisation=organisation)
        .select_related("user")
        .order_by("user__username")
    )
    with_device = set(
        TOTPDevice.objects.filter(
            user_id__in=[m.user_id for m in members], confirmed=True
        ).values_list("user_id", flat=True)
    )
    return [(m, m.user_id in with_device) for m in members]
