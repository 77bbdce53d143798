"""Sign-ins through the login form, the admin's and the JWT endpoint are recorded in every
organisation of the user, from the client's address; failures too (never the password),
including those refused by a lockout; an unknown username in no organisation."""

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from audit.models import ActorType, AuditEvent, Outcome
from organizations.models import Role
from tests import factories
from tests.audit.helpers import events

pytestmark = pytest.mark.django_db

RIGHT = "password"  # tests.factories.UserFactory's


def form(username, password, path="/login/", address="198.51.100.7"):
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})


def jwt(username, password, address="198.51.100.8"):
    body = {"username": username, "password": password}
    return APIClient(REMOTE_ADDR=address).post("/api/auth/token", body, format="json")


def test_a_sign_in_on_the_form_is_recorded_in_each_of_the_users_organisations(
    owner, organisation, other_organisation
):
    factories.MembershipFactory(user=owner, organisation=other_organisation, role=Role.VIEWER)

    assert form("owner", RIGHT).status_code == 302

    for org in (organisation, other_organisation):
        (event,) = events(org)
        assert event.action == "auth.login" and event.outcome == Outcome.SUCCESS
        assert (event.actor_type, event.actor_name, event.actor_ref) == (
            ActorType.USER,
            "owner",
            str(owner.pk),
        )
        assert event.ip == "198.51.100.7" and event.details == {"method": "form"}


def test_a_jwt_and_an_admin_sign_in_say_how_the_user_signed_in(owner, organisation):
    owner.is_staff = True
    owner.save()

    assert jwt("owner", RIGHT).status_code == 200
    assert form("owner", RIGHT, path="/admin/login/?next=/admin/").status_code == 302

    by_jwt, by_admin = events(organisation, action="auth.login")
    assert by_jwt.details == {"method": "jwt"} and by_jwt.ip == "198.51.100.8"
    assert by_admin.details == {"method": "admin"}


def test_wrong_passwords_are_recorded_as_failures_without_the_password(owner, organisation):
    assert form("owner", "wrong-1").status_code == 200
    assert jwt("owner", "wrong-2").status_code == 401

    on_form, on_api = events(organisation)
    for event, method in ((on_form, "form"), (on_api, "jwt")):
        assert event.action == "auth.login_failed" and event.outcome == Outcome.FAILURE
        assert event.actor_name == "owner" and event.object_id == str(owner.pk)
        assert event.details == {"method": method, "locked_out": False, "known_user": True}
    assert "wrong" not in json.dumps([on_form.details, on_api.details])


def test_an_unknown_username_is_recorded_in_no_organisation(organisation):
    assert jwt("nobody-here", "guess").status_code == 401

    (event,) = AuditEvent.objects.all()
    assert event.organisation_id is None and event.actor_name == "nobody-here"
    assert event.details["known_user"] is False
    assert events(organisation) == []


def test_a_sign_in_refused_by_the_lockout_is_recorded_as_locked_out(owner, organisation, settings):
    settings.AXES_FAILURE_LIMIT = 2
    form("owner", "wrong")
    form("owner", "wrong")

    assert form("owner", RIGHT).status_code == 429

    attempts = events(organisation, action="auth.login_failed")
    assert attempts[-1].details["locked_out"] is True
    assert not events(organisation, action="auth.login")
