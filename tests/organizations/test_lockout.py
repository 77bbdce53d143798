"""Sign-in lockout (django-axes, organizations/lockout.py): wrong passwords on the form, the
admin and the token endpoint lock that username out from that address, and the address
itself at a higher bound; the right password is refused then, without being hashed; another
user or another address is not affected; administrators see and lift lockouts.

Attempts are rows of the test database, so every test starts with none.
"""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from axes.models import AccessAttempt
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.management import call_command
from django.test import AsyncClient, Client
from django.utils import timezone
from rest_framework.test import APIClient

from organizations.models import Role
from tests import factories

pytestmark = pytest.mark.django_db

LIMIT = 3
ADDRESS_LIMIT = 5
RIGHT = "password"  # tests.factories.UserFactory's


class CountingHasher(MD5PasswordHasher):
    """The test profile's hasher, counting the passwords it checks."""

    checked = 0

    def verify(self, password, encoded):
        CountingHasher.checked += 1
        return super().verify(password, encoded)


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.STRONGBOX_LOGIN_ADDRESS_FAILURE_LIMIT = ADDRESS_LIMIT


@pytest.fixture
def member(organisation):
    def make(username):
        user = factories.UserFactory(username=username)
        factories.MembershipFactory(user=user, organisation=organisation, role=Role.VIEWER)
        return user

    return make


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", RIGHT)


def form_sign_in(username, password, address="127.0.0.1", path="/login/"):
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})


def token_sign_in(username, password, address="127.0.0.1"):
    client = APIClient(REMOTE_ADDR=address)
    return client.post("/api/auth/token", {"username": username, "password": password}, "json")


def _signed_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.wsgi_request.session


def _assert_lockout_page(response):
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60


def test_the_form_refuses_the_right_password_after_repeated_wrong_ones(owner):
    for _ in range(LIMIT - 1):
        assert form_sign_in("owner", "wrong").status_code == 200
    _assert_lockout_page(form_sign_in("owner", "wrong"))

    refused = form_sign_in("owner", RIGHT)
    _assert_lockout_page(refused)
    assert "_auth_user_id" not in refused.wsgi_request.session
    # The form again, with the message and the username kept.
    assert 'name="password"' in refused.content.decode()
    assert 'value="owner"' in refused.content.decode()


def test_the_admin_login_is_locked_out_the_same_way(root):
    path = "/admin/login/?next=/admin/"
    for _ in range(LIMIT):
        form_sign_in("root", "wrong", path=path)
    refused = form_sign_in("root", RIGHT, path=path)
    _assert_lockout_page(refused)
    assert "Django administration" in refused.content.decode()
    assert "_auth_user_id" not in refused.wsgi_request.session


def test_the_token_endpoint_answers_429_with_retry_after(owner):
    for _ in range(LIMIT - 1):
        assert token_sign_in("owner", "wrong").status_code == 401
    locking = token_sign_in("owner", "wrong")
    assert locking.status_code == 429

    refused = token_sign_in("owner", RIGHT)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "locked_out"
    assert "Too many failed sign-ins" in refused.json()["error"]["message"]
    assert 14 * 60 < int(refused["Retry-After"]) <= 15 * 60
    assert "token" not in refused.json()


def test_failures_on_the_form_and_the_api_add_up(owner):
    form_sign_in("owner", "wrong")
    token_sign_in("owner", "wrong")
    form_sign_in("owner", "wrong")
    assert token_sign_in("owner", RIGHT).status_code == 429


def test_a_locked_out_sign_in_hashes_no_password(owner, settings):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    CountingHasher.checked = 0
    for _ in range(LIMIT):
        token_sign_in("owner", "wrong")
    assert CountingHasher.checked == LIMIT
    for _ in range(10):
        assert token_sign_in("owner", RIGHT).status_code == 429
        assert form_sign_in("owner", RIGHT).status_code == 429
    assert CountingHasher.checked == LIMIT


def test_another_user_and_another_address_are_not_affected(owner, member):
    member("colleague")
    for _ in range(LIMIT):
        form_sign_in("owner", "wrong")
    assert form_sign_in("owner", RIGHT).status_code == 429

    assert _signed_in(form_sign_in("colleague", RIGHT))
    assert token_sign_in("colleague", RIGHT).status_code == 200
    assert _signed_in(form_sign_in("owner", RIGHT, address="10.0.0.2"))
    assert token_sign_in("owner", RIGHT, address="10.0.0.2").status_code == 200


def test_an_address_guessing_many_usernames_is_locked_at_the_higher_bound(member):
    member("late")
    # Below the per-user limit each, but the address's failures add up.
    for n in range(ADDRESS_LIMIT):
        form_sign_in(f"guess-{n}", "wrong")
    assert form_sign_in("late", RIGHT).status_code == 429
    assert token_sign_in("late", RIGHT).status_code == 429
    assert token_sign_in("late", RIGHT, address="10.0.0.3").status_code == 200


def test_a_success_forgets_only_that_users_failures_from_that_address(owner, member):
    member("colleague")
    for _ in range(LIMIT - 1):
        form_sign_in("owner", "wrong")
        form_sign_in("colleague", "wrong")
    assert token_sign_in("owner", RIGHT).status_code == 200

    assert not AccessAttempt.objects.filter(username="owner").exists()
    colleague = AccessAttempt.objects.get(username="colleague")
    assert colleague.failures_since_start == LIMIT - 1
    # The owner starts again from none; the colleague is one failure from the lockout.
    form_sign_in("owner", "wrong")
    assert _signed_in(form_sign_in("owner", RIGHT))
    assert form_sign_in("colleague", "wrong").status_code == 429


def test_a_lockout_ends_after_the_cool_off(owner):
    for _ in range(LIMIT):
        token_sign_in("owner", "wrong")
    assert token_sign_in("owner", RIGHT).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert token_sign_in("owner", RIGHT).status_code == 200


def test_an_administrator_sees_the_lockout_and_lifts_it_in_the_admin(owner, root):
    for _ in range(LIMIT):
        form_sign_in("owner", "wrong", address="192.0.2.10")
    admin = Client()
    admin.force_login(root)
    listing = admin.get("/admin/axes/accessattempt/?locked_out=yes")
    assert listing.status_code == 200
    assert "192.0.2.10" in listing.content.decode()

    attempt = AccessAttempt.objects.get(username="owner")
    lifted = admin.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )
    assert lifted.status_code == 302
    assert _signed_in(form_sign_in("owner", RIGHT, address="192.0.2.10"))


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("axes_reset_username", ["owner"]),
        ("axes_reset_ip", ["192.0.2.20"]),
        ("axes_reset_ip_username", ["192.0.2.20", "owner"]),
        ("axes_reset", []),
    ],
)
def test_the_axes_reset_commands_lift_it(owner, command, args):
    for _ in range(LIMIT):
        token_sign_in("owner", "wrong", address="192.0.2.20")
    assert token_sign_in("owner", RIGHT, address="192.0.2.20").status_code == 429
    call_command(command, *args, stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert token_sign_in("owner", RIGHT, address="192.0.2.20").status_code == 200


def test_x_forwarded_for_does_not_escape_the_lockout_without_trusted_proxies(owner):
    for n in range(LIMIT):
        Client(HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").post(
            "/login/", {"username": "owner", "password": "wrong"}
        )
    spoofed = Client(HTTP_X_FORWARDED_FOR="203.0.113.200")
    assert spoofed.post("/login/", {"username": "owner", "password": RIGHT}).status_code == 429


def test_a_lockout_without_cool_off_lasts_until_an_administrator_lifts_it(owner, settings):
    settings.AXES_COOLOFF_TIME = None
    for _ in range(LIMIT):
        token_sign_in("owner", "wrong")
    refused = token_sign_in("owner", RIGHT)
    assert refused.status_code == 429
    assert "Retry-After" not in refused
    assert "administrator" in refused.json()["error"]["message"]


def test_the_lockout_page_is_served_under_asgi_too(owner):
    # uvicorn runs the middleware asynchronously: axes' async path calls the lockout
    # callable with its arguments shifted (organizations.lockout.lockout_response).
    async def sign_in(password):
        form = {"username": "owner", "password": password}
        return await AsyncClient().post("/login/", form)

    for _ in range(LIMIT):
        async_to_sync(sign_in)("wrong")
    _assert_lockout_page(async_to_sync(sign_in)(RIGHT))


def test_an_address_limit_of_zero_turns_only_that_bound_off(owner, member, settings):
    settings.STRONGBOX_LOGIN_ADDRESS_FAILURE_LIMIT = 0
    member("late")
    for n in range(ADDRESS_LIMIT + 2):
        form_sign_in(f"guess-{n}", "wrong")
    assert token_sign_in("late", RIGHT).status_code == 200
    for _ in range(LIMIT):
        form_sign_in("owner", "wrong")
    assert token_sign_in("owner", RIGHT).status_code == 429


def test_a_username_longer_than_any_user_can_have_is_refused_without_a_500(owner):
    response = token_sign_in("u" * 300, "wrong")
    assert response.status_code == 400
    assert "username" in response.json()["error"]["fields"]
    # The forms check no length before authenticating: the failure counts, cut to fit.
    for path in ("/login/", "/admin/login/"):
        assert form_sign_in("u" * 300, "wrong", path=path).status_code == 200
    assert AccessAttempt.objects.get().username == "u" * 255
