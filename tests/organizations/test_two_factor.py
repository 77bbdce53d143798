"""Two-factor authentication (organizations/two_factor.py): enrolment, the sign-in's code
step through the real form, replayed and wrong codes, the lockout, organisations that
require it (two side by side), JWTs and the admin.

Codes are real TOTP codes computed from the device's key (tests/organizations/helpers.py).
"""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.backends import ModelBackend
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from audit.models import AuditEvent
from organizations import two_factor
from organizations.models import Organisation, Role
from tests import factories
from tests.organizations.helpers import (
    code_at,
    current_code,
    enrolled,
    fresh_code,
    wrong_code,
)

pytestmark = pytest.mark.django_db

PASSWORD = "password"  # tests.factories.UserFactory's


class SsoBackend(ModelBackend):
    """Stands in for an SSO backend (any backend but the local one): what matters is that
    the session was not signed in with a local password."""


@pytest.fixture(autouse=True)
def _no_device_wait(settings):
    # django-otp's throttling makes the device wait 1 s, 2 s… after a wrong code; the tests
    # of other behaviour turn it off, the throttling's own test turns it back on.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.OTP_STATIC_THROTTLE_FACTOR = 0


def member(organisation, username, role=Role.VIEWER):
    user = factories.UserFactory(username=username)
    factories.MembershipFactory(user=user, organisation=organisation, role=role)
    return user


def password_step(client, username, password=PASSWORD, next_url=None):
    data = {"username": username, "password": password}
    path = "/login/" + (f"?next={next_url}" if next_url else "")
    return client.post(path, data)


def code_step(client, code):
    return client.post("/login/code/", {"otp_token": code})


def recovery_codes_in(response) -> list[str]:
    html = response.content.decode()
    if 'data-testid="recovery-codes"' not in html:
        return []
    listed = html.split('data-testid="recovery-codes"')[1].split("</ul>")[0]
    return [part.split("</code>")[0] for part in listed.split("<code>")[1:]]


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def sign_in_with_code(client, user, device) -> None:
    assert password_step(client, user.username)["Location"] == "/login/code/"
    response = code_step(client, fresh_code(device))
    assert response.status_code == 302, response.content.decode()[:2000]


# --- signing in -------------------------------------------------------------------------


def test_a_user_without_a_device_signs_in_with_the_password_alone(owner):
    client = Client()
    response = password_step(client, "owner")
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert signed_in(client)


def test_a_user_with_a_device_is_signed_in_only_once_the_code_is_right(owner):
    device = enrolled(owner)
    client = Client()

    response = password_step(client, "owner")
    assert response.status_code == 302
    assert response["Location"] == "/login/code/"
    assert not signed_in(client)
    assert client.get("/").status_code == 302  # still signed out: to the sign-in page
    page = client.get("/login/code/")
    assert page.status_code == 200
    assert "Signing in as <strong>owner</strong>" in page.content.decode()

    response = code_step(client, current_code(device))
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert signed_in(client)
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get("/").status_code == 200


def test_a_wrong_code_is_refused_and_the_user_stays_signed_out(owner):
    device = enrolled(owner)
    client = Client()
    password_step(client, "owner")

    response = code_step(client, wrong_code(device))
    assert response.status_code == 200
    assert "That code is not right" in response.content.decode()
    assert not signed_in(client)
    for not_a_code in ("", "12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        assert code_step(client, not_a_code).status_code == 200
        assert not signed_in(client)

    code_step(client, current_code(device))
    assert signed_in(client)


def test_a_code_already_used_is_refused(owner):
    device = enrolled(owner)
    code = current_code(device)
    first = Client()
    password_step(first, "owner")
    code_step(first, code)
    assert signed_in(first)

    second = Client()
    password_step(second, "owner")
    response = code_step(second, code)
    assert "That code is not right, or was already used" in response.content.decode()
    assert not signed_in(second)


def test_where_the_user_was_going_is_kept_through_the_code_step(owner):
    device = enrolled(owner)
    client = Client()
    password_step(client, "owner", next_url="/settings/tokens/")
    assert code_step(client, current_code(device))["Location"] == "/settings/tokens/"


def test_a_next_elsewhere_is_not_followed(owner):
    device = enrolled(owner)
    client = Client()
    password_step(client, "owner", next_url="https://evil.example/")
    assert code_step(client, current_code(device))["Location"] == "/"


def test_the_code_step_without_a_right_password_goes_back_to_the_sign_in(owner):
    enrolled(owner)
    client = Client()
    assert client.get("/login/code/")["Location"] == "/login/"
    assert client.post("/login/code/", {"otp_token": "123456"})["Location"] == "/login/"
    assert not signed_in(client)


def test_the_code_step_expires_after_five_minutes(owner):
    device = enrolled(owner)
    client = Client()
    password_step(client, "owner")
    session = client.session
    session[two_factor.PENDING_SESSION_KEY]["at"] -= two_factor.PENDING_SECONDS + 1
    session.save()
    assert code_step(client, current_code(device))["Location"] == "/login/"
    assert not signed_in(client)


def test_the_device_waits_longer_after_each_wrong_code(owner, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 60  # a minute after the first wrong code
    device = enrolled(owner)
    client = Client()
    password_step(client, "owner")
    code_step(client, wrong_code(device))

    response = code_step(client, current_code(device))
    assert "Too many wrong codes: wait" in response.content.decode()
    assert not signed_in(client)


def test_wrong_codes_count_toward_the_sign_in_lockout(owner, settings):
    settings.AXES_FAILURE_LIMIT = 3
    device = enrolled(owner)
    client = Client()
    password_step(client, "owner")
    assert code_step(client, wrong_code(device)).status_code == 200
    assert code_step(client, wrong_code(device)).status_code == 200
    locked = code_step(client, wrong_code(device))
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert 14 * 60 < int(locked["Retry-After"]) <= 15 * 60

    # Locked out: the right password and then the right code are both refused.
    again = Client()
    assert password_step(again, "owner").status_code == 429
    assert not signed_in(again)
    # Another address is not locked out.
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    sign_in_with_code(elsewhere, owner, device)
    assert signed_in(elsewhere)


def test_a_right_code_forgets_the_wrong_ones(owner, settings):
    settings.AXES_FAILURE_LIMIT = 3
    device = enrolled(owner)
    client = Client()
    password_step(client, "owner")
    code_step(client, wrong_code(device))
    code_step(client, wrong_code(device))
    code_step(client, current_code(device))
    assert signed_in(client)

    client = Client()
    password_step(client, "owner")
    code_step(client, wrong_code(device))
    code_step(client, wrong_code(device))
    assert code_step(client, fresh_code(device)).status_code == 302


# --- the two-factor page ----------------------------------------------------------------


def test_enrolment_shows_a_qr_code_and_the_key_and_counts_only_once_confirmed(owner):
    client = Client()
    client.force_login(owner)
    page = client.get("/account/two-factor/")
    assert "Set up two-factor" in page.content.decode()

    assert client.post("/account/two-factor/", {"action": "start"}).status_code == 302
    page = client.get("/account/two-factor/")
    html = page.content.decode()
    device = TOTPDevice.objects.get(user=owner)
    assert not device.confirmed
    assert page["Cache-Control"] == "no-store"
    assert "<svg" in html and 'data-testid="totp-qr"' in html
    assert two_factor.secret_of(device) in html
    assert "otpauth://" not in html  # only inside the QR code's drawing
    assert "https://" not in html.split('data-testid="totp-qr"')[1].split("</div>")[0]

    # Not confirmed yet: the password alone still signs in.
    other = Client()
    password_step(other, "owner")
    assert signed_in(other)

    refused = client.post(
        "/account/two-factor/", {"action": "confirm", "otp_token": wrong_code(device)}
    )
    assert refused.status_code == 400
    device.refresh_from_db()
    assert not device.confirmed

    done = client.post(
        "/account/two-factor/", {"action": "confirm", "otp_token": current_code(device)}
    )
    assert done.status_code == 200
    assert done["Cache-Control"] == "no-store"
    assert len(recovery_codes_in(done)) == 10  # shown once, with the confirmation
    device.refresh_from_db()
    assert device.confirmed
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id  # verified now
    page = client.get("/account/two-factor/").content.decode()
    assert "<strong>On</strong>" in page
    assert two_factor.secret_of(device) not in page  # the key is never shown again

    # From now on the sign-in asks for a code.
    later = Client()
    assert password_step(later, "owner")["Location"] == "/login/code/"


def test_starting_again_gives_a_new_key(owner):
    client = Client()
    client.force_login(owner)
    client.post("/account/two-factor/", {"action": "start"})
    first = TOTPDevice.objects.get(user=owner).key
    client.post("/account/two-factor/", {"action": "start"})
    assert TOTPDevice.objects.filter(user=owner).count() == 1
    assert TOTPDevice.objects.get(user=owner).key != first


def test_turning_it_off_needs_a_current_code(owner):
    device = enrolled(owner)
    client = Client()
    sign_in_with_code(client, owner, device)

    refused = client.post(
        "/account/two-factor/", {"action": "disable", "otp_token": wrong_code(device)}
    )
    assert refused.status_code == 400
    assert TOTPDevice.objects.filter(user=owner).exists()

    client.post("/account/two-factor/", {"action": "disable", "otp_token": fresh_code(device)})
    assert not TOTPDevice.objects.filter(user=owner).exists()
    other = Client()
    password_step(other, "owner")
    assert signed_in(other)


def test_turning_it_off_is_refused_while_an_organisation_requires_it(owner, organisation):
    device = enrolled(owner)
    Organisation.objects.filter(pk=organisation.pk).update(require_two_factor=True)
    client = Client()
    sign_in_with_code(client, owner, device)
    client.post("/account/two-factor/", {"action": "disable", "otp_token": fresh_code(device)})
    assert TOTPDevice.objects.filter(user=owner, confirmed=True).exists()
    page = client.get("/account/two-factor/").content.decode()
    assert "cannot be turned off while an organisation of yours requires it" in page


# --- organisations that require it ---------------------------------------------------------


PAGES = ["/", "/settings/tokens/", "/settings/encryption/", "/restores/", "/alerts/"]


def test_a_member_without_a_device_is_sent_to_enrolment_and_can_do_nothing_else(
    organisation, project
):
    Organisation.objects.filter(pk=organisation.pk).update(require_two_factor=True)
    user = member(organisation, "ana", Role.ADMIN)
    client = Client()
    response = password_step(client, "ana")
    assert response["Location"] == "/"  # signed in: the page then sends to enrolment
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/account/two-factor/?next="), path
    api = client.get("/api/projects")
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "two_factor_required"
    assert "Quant Gov requires two-factor authentication" in api.json()["error"]["message"]
    page = client.get("/account/two-factor/?next=/settings/tokens/").content.decode()
    assert "Quant Gov requires two-factor authentication" in page

    client.post("/account/two-factor/", {"action": "start", "next": "/settings/tokens/"})
    device = TOTPDevice.objects.get(user=user)
    done = client.post(
        "/account/two-factor/",
        {"action": "confirm", "otp_token": current_code(device), "next": "/settings/tokens/"},
    )
    assert '<a href="/settings/tokens/" class="button">Continue</a>' in done.content.decode()
    for path in PAGES:
        assert client.get(path).status_code == 200, path
    assert client.get("/api/projects").status_code == 200


def test_the_requirement_applies_when_acting_in_the_organisation_that_sets_it(
    organisation, other_organisation
):
    # A requires two-factor, B does not; Bea belongs to both and has no device.
    Organisation.objects.filter(pk=organisation.pk).update(require_two_factor=True)
    factories.ProjectFactory(organisation=organisation, name="A's", slug="a-project")
    b_project = factories.ProjectFactory(organisation=other_organisation, name="B's", slug="b")
    bea = member(organisation, "bea")
    factories.MembershipFactory(user=bea, organisation=other_organisation, role=Role.VIEWER)
    client = Client()
    password_step(client, "bea")

    client.post("/organisations/switch/", {"organisation": str(other_organisation.id)})
    assert client.get("/").status_code == 200
    assert "Elsewhere" in client.get("/").content.decode()
    in_b = client.get("/api/projects", HTTP_X_ORGANIZATION="elsewhere")
    assert in_b.status_code == 200
    assert [p["id"] for p in in_b.json()["results"]] == [str(b_project.id)]
    in_a = client.get("/api/projects", HTTP_X_ORGANIZATION="quant-gov")
    assert in_a.status_code == 403
    assert in_a.json()["error"]["code"] == "two_factor_required"

    client.post("/organisations/switch/", {"organisation": str(organisation.id)})
    assert client.get("/")["Location"].startswith("/account/two-factor/")
    # B's flag is untouched by A's.
    other_organisation.refresh_from_db()
    assert not other_organisation.require_two_factor


def test_a_session_signed_in_without_a_code_is_unverified(organisation, owner):
    # The admin's own sign-in form takes the password alone; the site then asks for a code.
    device = enrolled(owner)
    client = Client()
    client.force_login(owner)
    assert client.get("/")["Location"] == "/account/two-factor/?next=%2F"
    api = client.get("/api/projects")
    assert api.status_code == 403
    assert "not verified with a one-time code" in api.json()["error"]["message"]

    page = client.get("/account/two-factor/").content.decode()
    assert "Verify this session" in page
    response = client.post(
        "/account/two-factor/", {"action": "verify", "otp_token": current_code(device), "next": "/"}
    )
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get("/api/projects").status_code == 200


def test_an_sso_session_skips_the_local_code_except_where_two_factor_is_required(
    organisation, other_organisation, settings
):
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        f"{__name__}.SsoBackend",
    ]
    Organisation.objects.filter(pk=organisation.pk).update(require_two_factor=True)
    cara = member(other_organisation, "cara")
    factories.MembershipFactory(user=cara, organisation=organisation, role=Role.VIEWER)
    device = enrolled(cara)
    client = Client()
    client.force_login(cara, backend=f"{__name__}.SsoBackend")

    client.post("/organisations/switch/", {"organisation": str(other_organisation.id)})
    assert client.get("/").status_code == 200  # B does not require it: no local code asked
    client.post("/organisations/switch/", {"organisation": str(organisation.id)})
    assert client.get("/")["Location"].startswith("/account/two-factor/")  # A does
    client.post("/account/two-factor/", {"action": "verify", "otp_token": current_code(device)})
    assert client.get("/").status_code == 200


def test_only_an_admin_changes_the_requirement(organisation, other_organisation, owner, viewer):
    outsider_admin = member(other_organisation, "olga", Role.ADMIN)
    as_viewer = Client()
    as_viewer.force_login(viewer)
    assert as_viewer.get("/settings/security/").status_code == 403
    assert as_viewer.post("/settings/security/", {"require_two_factor": "on"}).status_code == 403

    as_owner = Client()
    as_owner.force_login(owner)
    page = as_owner.get("/settings/security/").content.decode()
    assert "Require two-factor authentication" in page
    assert as_owner.post("/settings/security/", {"require_two_factor": "on"}).status_code == 302
    organisation.refresh_from_db()
    assert organisation.require_two_factor
    other_organisation.refresh_from_db()
    assert not other_organisation.require_two_factor
    # The admin has no device yet: acting here now needs one.
    assert as_owner.get("/settings/security/")["Location"].startswith("/account/two-factor/")

    as_outsider = Client()
    as_outsider.force_login(outsider_admin)
    as_outsider.post("/settings/security/", {})
    organisation.refresh_from_db()
    assert organisation.require_two_factor  # Olga changed only her own organisation's
    other_organisation.refresh_from_db()
    assert not other_organisation.require_two_factor


def test_the_settings_page_lists_who_has_two_factor(organisation, owner, viewer):
    enrolled(viewer)
    client = Client()
    client.force_login(owner)
    html = client.get("/settings/security/").content.decode()
    assert '<td data-label="User">owner</td><td data-label="Role">Admin</td>' in html
    rows = {r.split("</td>")[0]: r for r in html.split('<td data-label="User">')[1:]}
    assert "<strong>off</strong>" in rows["owner"]
    assert ">on<" in rows["viewer"]


def test_organisation_api_tokens_are_unaffected(organisation, client_for, owner):
    Organisation.objects.filter(pk=organisation.pk).update(require_two_factor=True)
    assert client_for(organisation, Role.VIEWER).get("/api/projects").status_code == 200


# --- JWTs --------------------------------------------------------------------------------


def token_request(body, address="127.0.0.1"):
    return APIClient(REMOTE_ADDR=address).post("/api/auth/token", body, format="json")


def test_the_token_endpoint_asks_a_user_with_a_device_for_the_code(owner):
    device = enrolled(owner)
    missing = token_request({"username": "owner", "password": PASSWORD})
    assert missing.status_code == 400
    assert missing.json()["error"]["fields"] == {"otp": ["Required for this user."]}

    wrong = token_request({"username": "owner", "password": PASSWORD, "otp": wrong_code(device)})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_otp"
    assert "otp" in wrong.json()["error"]["fields"]

    code = current_code(device)
    right = token_request({"username": "owner", "password": PASSWORD, "otp": code})
    assert right.status_code == 200
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {right.json()['token']}")
    assert api.get("/api/projects").status_code == 200

    replayed = token_request({"username": "owner", "password": PASSWORD, "otp": code})
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "invalid_otp"


def test_a_wrong_password_is_still_refused_before_the_code(owner):
    device = enrolled(owner)
    response = token_request({"username": "owner", "password": "nope", "otp": current_code(device)})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"
    device.refresh_from_db()
    assert device.last_t == -1  # the code was not even looked at


def test_wrong_codes_at_the_token_endpoint_lock_the_username_out(owner, settings):
    settings.AXES_FAILURE_LIMIT = 3
    device = enrolled(owner)
    body = {"username": "owner", "password": PASSWORD}
    assert token_request({**body, "otp": wrong_code(device)}).status_code == 401
    assert token_request({**body, "otp": wrong_code(device)}).status_code == 401
    locked = token_request({**body, "otp": wrong_code(device)})
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "locked_out"
    refused = token_request({**body, "otp": current_code(device)})
    assert refused.status_code == 429
    assert token_request({**body, "otp": current_code(device)}, "198.51.100.7").status_code == 200


def test_a_user_without_a_device_gets_a_token_that_an_organisation_requiring_it_refuses(
    organisation, other_organisation
):
    Organisation.objects.filter(pk=organisation.pk).update(require_two_factor=True)
    dan = member(organisation, "dan")
    factories.MembershipFactory(user=dan, organisation=other_organisation, role=Role.VIEWER)
    response = token_request({"username": "dan", "password": PASSWORD, "otp": "123456"})
    assert response.status_code == 200  # no device: the code is not asked for
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    refused = api.get("/api/projects", HTTP_X_ORGANIZATION="quant-gov")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "two_factor_required"
    assert "otp" in refused.json()["error"]["message"]
    assert api.get("/api/projects", HTTP_X_ORGANIZATION="elsewhere").status_code == 200

    device = enrolled(dan)
    body = {"username": "dan", "password": PASSWORD, "otp": current_code(device)}
    verified = APIClient()
    verified.credentials(HTTP_AUTHORIZATION=f"Bearer {token_request(body).json()['token']}")
    assert verified.get("/api/projects", HTTP_X_ORGANIZATION="quant-gov").status_code == 200


# --- the admin ---------------------------------------------------------------------------


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


def test_the_admin_asks_a_superuser_with_a_device_for_a_code(root):
    device = enrolled(root)
    client = Client()
    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 302
    index = client.get("/admin/")
    assert index.status_code == 302
    assert client.get(index["Location"])["Location"] == "/account/two-factor/?next=%2Fadmin%2F"
    client.post(
        "/account/two-factor/",
        {"action": "verify", "otp_token": current_code(device), "next": "/admin/"},
    )
    assert client.get("/admin/").status_code == 200


def test_the_admin_lets_a_superuser_without_a_device_in_with_the_password(root):
    client = Client()
    client.post("/admin/login/", {"username": "root", "password": PASSWORD})
    assert client.get("/admin/").status_code == 200


def test_the_admin_after_the_code_step_needs_nothing_more(root):
    device = enrolled(root)
    client = Client()
    sign_in_with_code(client, root, device)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/otp_totp/totpdevice/").status_code == 200


def test_code_at_matches_what_the_device_accepts(owner):
    # The helper computes codes as an app does: the device accepts the current step's.
    device = enrolled(owner)
    now = (int(time.time()) - device.t0) // device.step
    assert device.verify_token(code_at(device, now))


def test_changing_the_requirement_is_logged_for_audit(organisation, owner, root, caplog):
    as_owner = Client()
    as_owner.force_login(owner)
    with caplog.at_level("WARNING", logger="strongbox.audit"):
        as_owner.post("/settings/security/", {"require_two_factor": "on"})
        as_owner.post("/settings/security/", {"require_two_factor": "on"})  # no change
    assert caplog.text.count("organisation quant-gov: two-factor required by owner") == 1
    (event,) = AuditEvent.objects.filter(action="organisation.two_factor")
    assert event.actor_name == "owner" and event.details["after"] == {"requireTwoFactor": True}

    as_root = Client()
    as_root.force_login(root)
    caplog.clear()
    with caplog.at_level("WARNING", logger="strongbox.audit"):
        saved = as_root.post(
            f"/admin/organizations/organisation/{organisation.pk}/change/",
            {
                "name": "Quant Gov",
                "slug": "quant-gov",
                "memberships-TOTAL_FORMS": "0",
                "memberships-INITIAL_FORMS": "0",
            },
        )
    assert saved.status_code == 302
    organisation.refresh_from_db()
    assert not organisation.require_two_factor
    assert "organisation quant-gov: two-factor no longer required by root" in caplog.text


# --- recovery codes ----------------------------------------------------------------------


def enrol_through_the_page(client, user) -> tuple[TOTPDevice, list[str]]:
    client.force_login(user)
    client.post("/account/two-factor/", {"action": "start"})
    device = TOTPDevice.objects.get(user=user)
    done = client.post(
        "/account/two-factor/", {"action": "confirm", "otp_token": current_code(device)}
    )
    return device, recovery_codes_in(done)


def test_recovery_codes_are_shown_once_and_stored_as_digests(owner):
    client = Client()
    _, codes = enrol_through_the_page(client, owner)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = set(StaticToken.objects.filter(device__user=owner).values_list("token", flat=True))
    assert len(stored) == 10
    for code in codes:
        assert code not in stored and code.replace("-", "") not in stored
    page = client.get("/account/two-factor/").content.decode()
    assert not any(code in page for code in codes)
    assert "10 unused recovery codes left." in page


def test_a_recovery_code_signs_in_once_instead_of_the_app(owner):
    _, codes = enrol_through_the_page(Client(), owner)
    client = Client()
    password_step(client, "owner")
    assert code_step(client, codes[3].upper()).status_code == 302  # as typed from paper
    assert signed_in(client)
    assert "9 unused recovery codes left." in client.get("/account/two-factor/").content.decode()

    again = Client()
    password_step(again, "owner")
    assert code_step(again, codes[3]).status_code == 200
    assert not signed_in(again)


def test_a_recovery_code_gets_a_token_and_turns_two_factor_off(owner):
    _, codes = enrol_through_the_page(Client(), owner)
    body = {"username": "owner", "password": PASSWORD, "otp": codes[0]}
    assert token_request(body).status_code == 200
    assert token_request(body).status_code == 401  # used up

    client = Client()
    password_step(client, "owner")
    code_step(client, codes[1])
    client.post("/account/two-factor/", {"action": "disable", "otp_token": codes[2]})
    assert not TOTPDevice.objects.filter(user=owner).exists()
    assert not StaticToken.objects.filter(device__user=owner).exists()


def test_new_recovery_codes_replace_the_old_ones(owner):
    client = Client()
    _, old = enrol_through_the_page(client, owner)
    new = recovery_codes_in(client.post("/account/two-factor/", {"action": "recovery"}))
    assert len(new) == 10 and not set(new) & set(old)
    other = Client()
    password_step(other, "owner")
    assert code_step(other, old[0]).status_code == 200
    assert code_step(other, new[0]).status_code == 302


def test_an_unverified_session_cannot_make_new_recovery_codes(owner):
    enrol_through_the_page(Client(), owner)
    before = set(StaticToken.objects.filter(device__user=owner).values_list("token", flat=True))
    client = Client()
    client.force_login(owner)  # the password alone
    response = client.post("/account/two-factor/", {"action": "recovery"})
    assert recovery_codes_in(response) == []
    after = set(StaticToken.objects.filter(device__user=owner).values_list("token", flat=True))
    assert after == before


def test_the_schema_documents_the_token_requests_otp(api_client):
    schema = api_client.get("/api/schema/", {"format": "json"}).json()
    body = schema["components"]["schemas"]["TokenRequestRequest"]
    assert "otp" in body["properties"] and "otp" not in body.get("required", [])
    assert "two-factor" in body["properties"]["otp"]["description"]
