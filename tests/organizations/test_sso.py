"""Single sign-on against a real OpenID provider on loopback (tests/fixtures/oidc.py):
the whole authorization code flow (state, nonce, PKCE, an RS256 ID token checked against
the provider's JWKS, userinfo) with Django's test client on Strongbox's side.

Users are created on their first sign-in, their memberships follow their groups on every
sign-in (only those single sign-on made), a user whose groups give nothing is refused, the
other organisation is untouched, and local passwords can be turned off.
"""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from organizations.models import Membership, MembershipSource, Role, SsoIdentity
from tests import factories
from tests.fixtures.oidc import ACCOUNTS, idp_sign_in
from tests.fixtures.s3 import free_port

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def two_organisations(organisation, other_organisation):
    """Quant Gov (the role map's) and Elsewhere with a member of its own."""
    stranger = factories.UserFactory(username="stranger")
    factories.MembershipFactory(user=stranger, organisation=other_organisation, role=Role.ADMIN)
    return organisation, other_organisation


def memberships(username: str) -> dict[str, tuple[str, str]]:
    return {
        m.organisation.slug: (m.role, m.source)
        for m in Membership.objects.filter(user__username=username).select_related("organisation")
    }


def test_a_mapped_admin_is_created_on_first_sign_in_and_lands_on_the_dashboard(
    client, sso_settings, two_organisations
):
    response = idp_sign_in(client, "ada")

    assert response.status_code == 302
    assert response["Location"] == "/"
    user = User.objects.get(username="ada")
    assert user.email == "ada@example.com"
    assert not user.has_usable_password()
    identity = SsoIdentity.objects.get(user=user)
    assert (identity.issuer, identity.subject) == (sso_settings.STRONGBOX_OIDC_ISSUER, "ada")
    assert identity.last_sign_in_at is not None
    assert memberships("ada") == {"quant-gov": (Role.ADMIN, MembershipSource.SSO)}
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    assert b"Quant Gov" in dashboard.content
    # An admin-only page.
    assert client.get("/settings/tokens/").status_code == 200


def test_a_second_sign_in_finds_the_same_user(client, sso_settings, two_organisations):
    idp_sign_in(client, "ada")
    client.logout()
    assert idp_sign_in(Client(), "ada").status_code == 302
    assert User.objects.filter(username__startswith="ada").count() == 1
    assert SsoIdentity.objects.count() == 1


def test_a_viewer_is_refused_an_operator_action(client, sso_settings, two_organisations):
    organisation, _ = two_organisations
    environment = factories.EnvironmentFactory(project__organisation=organisation)
    factories.DatabaseFactory(environment=environment)
    factories.DestinationFactory(organisation=organisation)
    idp_sign_in(client, "vic")

    assert memberships("vic") == {"quant-gov": (Role.VIEWER, MembershipSource.SSO)}
    response = client.post(f"/environments/{environment.id}/backups/new/", {"kind": "database"})
    assert response.status_code == 403
    assert not environment.backups.exists()
    assert client.get("/settings/tokens/").status_code == 403


def test_an_operator_may_start_a_backup(client, sso_settings, two_organisations):
    organisation, _ = two_organisations
    environment = factories.EnvironmentFactory(project__organisation=organisation)
    factories.DatabaseFactory(environment=environment)
    factories.DestinationFactory(organisation=organisation)
    idp_sign_in(client, "opal")

    response = client.post(f"/environments/{environment.id}/backups/new/", {"kind": "database"})
    assert response.status_code == 302
    assert environment.backups.count() == 1


def test_a_user_whose_groups_map_to_nothing_is_denied_and_no_user_is_kept(
    client, sso_settings, two_organisations
):
    users_before = User.objects.count()

    response = idp_sign_in(client, "nemo")

    assert response.status_code == 403
    assert b"Your account has no access to Strongbox" in response.content
    assert b"contractors" in response.content
    assert User.objects.count() == users_before
    assert not SsoIdentity.objects.exists()
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302  # to the sign-in page


def test_a_user_without_any_groups_claim_is_denied(
    client, sso_settings, oidc_accounts, two_organisations
):
    oidc_accounts.set_accounts({**ACCOUNTS, "ada": {"email": "ada@example.com"}})
    response = idp_sign_in(client, "ada")
    assert response.status_code == 403
    assert not User.objects.filter(username="ada").exists()


def test_the_role_follows_the_groups_and_a_removed_group_removes_the_membership(
    client, sso_settings, oidc_accounts, two_organisations
):
    idp_sign_in(client, "ada")
    assert memberships("ada") == {"quant-gov": (Role.ADMIN, MembershipSource.SSO)}

    oidc_accounts.set_accounts({**ACCOUNTS, "ada": {**ACCOUNTS["ada"], "groups": ["auditors"]}})
    assert idp_sign_in(Client(), "ada").status_code == 302
    assert memberships("ada") == {"quant-gov": (Role.VIEWER, MembershipSource.SSO)}

    oidc_accounts.set_accounts({**ACCOUNTS, "ada": {**ACCOUNTS["ada"], "groups": []}})
    again = Client()
    response = idp_sign_in(again, "ada")
    assert response.status_code == 403
    assert b"Your account has no access to Strongbox" in response.content
    assert memberships("ada") == {}
    # The row stays (its history: tokens it created, backups it started); it has no access.
    assert User.objects.filter(username="ada").exists()
    assert "_auth_user_id" not in again.session


def test_memberships_added_by_hand_are_left_alone(
    client, sso_settings, oidc_accounts, two_organisations
):
    _, elsewhere = two_organisations
    idp_sign_in(client, "ada")
    ada = User.objects.get(username="ada")
    factories.MembershipFactory(user=ada, organisation=elsewhere, role=Role.OPERATOR)

    # Her group now gives Quant Gov nothing; Elsewhere was given by hand and stays.
    oidc_accounts.set_accounts({**ACCOUNTS, "ada": {**ACCOUNTS["ada"], "groups": ["other"]}})
    assert idp_sign_in(Client(), "ada").status_code == 302
    assert memberships("ada") == {"elsewhere": (Role.OPERATOR, MembershipSource.MANUAL)}


def test_a_hand_made_membership_wins_over_a_grant_for_the_same_organisation(
    client, sso_settings, two_organisations
):
    organisation, _ = two_organisations
    idp_sign_in(client, "vic")
    vic = User.objects.get(username="vic")
    Membership.objects.filter(user=vic).update(role=Role.OPERATOR, source=MembershipSource.MANUAL)

    idp_sign_in(Client(), "vic")
    assert memberships("vic") == {"quant-gov": (Role.OPERATOR, MembershipSource.MANUAL)}


def test_every_organisation_rule_grants_each_and_the_other_tenant_is_otherwise_untouched(
    client, sso_settings, two_organisations
):
    organisation, elsewhere = two_organisations
    theirs = factories.EnvironmentFactory(project__organisation=elsewhere)
    before = sorted(Membership.objects.filter(organisation=elsewhere).values_list("user__username"))

    idp_sign_in(client, "ada")
    # Ada's rule names Quant Gov only: Elsewhere's objects are a 404 to her.
    assert memberships("ada") == {"quant-gov": (Role.ADMIN, MembershipSource.SSO)}
    page = client.get(f"/projects/{theirs.project_id}/environments/{theirs.id}/")
    assert page.status_code == 404
    assert (
        sorted(Membership.objects.filter(organisation=elsewhere).values_list("user__username"))
        == before
    )

    idp_sign_in(Client(), "eve")
    assert memberships("eve") == {
        "quant-gov": (Role.VIEWER, MembershipSource.SSO),
        "elsewhere": (Role.VIEWER, MembershipSource.SSO),
    }
    assert memberships("stranger") == {"elsewhere": (Role.ADMIN, MembershipSource.MANUAL)}


def test_a_rule_for_every_organisation_keeps_a_few_queries_over_many_organisations(
    client, sso_settings, oidc_accounts
):
    factories.OrganisationFactory.create_batch(300)
    idp_sign_in(client, "eve")
    assert Membership.objects.filter(user__username="eve", role=Role.VIEWER).count() == 300

    sso_settings.STRONGBOX_OIDC_ROLE_MAP = "everyone=*:operator"
    with CaptureQueriesContext(connection) as queries:
        idp_sign_in(Client(), "eve")
    assert Membership.objects.filter(user__username="eve", role=Role.OPERATOR).count() == 300
    # The whole callback: axes, the session, the sign-in; not a query per organisation.
    assert len(queries) < 40, [q["sql"][:120] for q in queries.captured_queries]


def test_an_id_token_from_another_issuer_is_refused(client, sso_settings, organisation):
    provider = sso_settings.STRONGBOX_OIDC_ISSUER
    sso_settings.STRONGBOX_OIDC_ISSUER = f"{provider}/another-realm"
    sso_settings.STRONGBOX_OIDC_AUTHORIZATION_ENDPOINT = f"{provider}/auth"
    sso_settings.STRONGBOX_OIDC_TOKEN_ENDPOINT = f"{provider}/token"
    sso_settings.STRONGBOX_OIDC_USERINFO_ENDPOINT = f"{provider}/me"
    sso_settings.STRONGBOX_OIDC_JWKS_URI = f"{provider}/jwks"

    response = idp_sign_in(client, "ada")

    assert response.status_code == 403
    assert b"answer was refused" in response.content
    assert not User.objects.filter(username="ada").exists()


def test_explicit_endpoints_work_without_discovery(client, sso_settings, organisation):
    provider = sso_settings.STRONGBOX_OIDC_ISSUER
    sso_settings.STRONGBOX_OIDC_ISSUER = ""
    sso_settings.STRONGBOX_OIDC_AUTHORIZATION_ENDPOINT = f"{provider}/auth"
    sso_settings.STRONGBOX_OIDC_TOKEN_ENDPOINT = f"{provider}/token"
    sso_settings.STRONGBOX_OIDC_USERINFO_ENDPOINT = f"{provider}/me"
    sso_settings.STRONGBOX_OIDC_JWKS_URI = f"{provider}/jwks"

    assert idp_sign_in(client, "ada").status_code == 302
    assert SsoIdentity.objects.get(subject="ada").issuer == provider


def test_a_local_account_with_the_same_name_and_address_is_not_taken_over(
    client, sso_settings, two_organisations
):
    _, elsewhere = two_organisations
    local = factories.UserFactory(username="ada", email="ada@example.com")
    factories.MembershipFactory(user=local, organisation=elsewhere, role=Role.ADMIN)

    idp_sign_in(client, "ada")

    sso_user = SsoIdentity.objects.get(subject="ada").user
    assert sso_user != local
    assert sso_user.username.startswith("ada-")
    assert memberships("ada") == {"elsewhere": (Role.ADMIN, MembershipSource.MANUAL)}
    assert memberships(sso_user.username) == {"quant-gov": (Role.ADMIN, MembershipSource.SSO)}
    assert client.session["_auth_user_id"] == str(sso_user.pk)


def test_a_user_disabled_here_is_refused_even_with_mapped_groups(
    client, sso_settings, two_organisations
):
    idp_sign_in(client, "ada")
    User.objects.filter(username="ada").update(is_active=False)

    again = Client()
    response = idp_sign_in(again, "ada")
    assert response.status_code == 403
    assert b"disabled" in response.content
    assert "_auth_user_id" not in again.session


def test_a_user_disabled_after_signing_in_loses_the_session(client, sso_settings, organisation):
    idp_sign_in(client, "ada")
    assert client.get("/settings/tokens/").status_code == 200
    User.objects.filter(username="ada").update(is_active=False)
    assert client.get("/settings/tokens/").status_code == 302  # to the sign-in page


def test_the_page_asked_for_before_signing_in_is_where_the_user_lands(
    client, sso_settings, two_organisations
):
    response = idp_sign_in(client, "ada", start="/oidc/authenticate/?next=/settings/tokens/")
    assert response["Location"] == "/settings/tokens/"


def test_a_callback_with_a_state_this_session_never_sent_is_refused(client, sso_settings):
    client.get("/oidc/authenticate/")
    response = client.get("/oidc/callback/?code=forged&state=forged")
    assert response.status_code == 400
    assert "_auth_user_id" not in client.session


def test_a_refusal_at_the_provider_shows_why(client, sso_settings):
    client.get("/oidc/authenticate/")
    response = client.get("/oidc/callback/?error=access_denied&error_description=Not+today")
    assert response.status_code == 403
    assert b"Not today" in response.content


def test_a_provider_that_does_not_answer_is_a_clear_page_not_an_error(client, sso_settings):
    sso_settings.STRONGBOX_OIDC_ISSUER = f"http://127.0.0.1:{free_port()}"
    response = client.get("/oidc/authenticate/")
    assert response.status_code == 503
    assert b"Sign-in is unavailable" in response.content


def test_the_sign_in_page_offers_the_provider_by_its_label(client, sso_settings):
    page = client.get("/login/").content.decode()
    assert "Sign in with Test IdP" in page
    assert 'href="/oidc/authenticate/"' in page
    assert 'name="password"' in page


def test_without_single_sign_on_the_page_and_its_urls_offer_nothing(client, settings):
    settings.STRONGBOX_OIDC_CLIENT_ID = ""
    assert "Sign in with" not in client.get("/login/").content.decode()
    assert client.get("/oidc/authenticate/").status_code == 503
    assert client.get("/oidc/callback/?code=a&state=b").status_code == 400


@pytest.fixture
def local_login_off(sso_settings):
    sso_settings.STRONGBOX_LOCAL_LOGIN = False
    return sso_settings


def test_with_local_login_off_the_password_form_is_gone(client, local_login_off):
    page = client.get("/login/").content.decode()
    assert "Sign in with Test IdP" in page
    assert 'name="password"' not in page
    assert "Password sign-in is turned off" in page


def test_with_local_login_off_passwords_are_refused_on_the_form_and_the_token_endpoint(
    client, local_login_off, owner
):
    client.post("/login/", {"username": "owner", "password": "password"})
    assert "_auth_user_id" not in client.session
    response = APIClient().post(
        "/api/auth/token", {"username": "owner", "password": "password"}, format="json"
    )
    assert response.status_code == 401


def test_with_local_login_off_a_superuser_still_signs_in_with_a_password(
    client, local_login_off, django_user_model
):
    django_user_model.objects.create_superuser("root", "root@example.com", "password")
    response = APIClient().post(
        "/api/auth/token", {"username": "root", "password": "password"}, format="json"
    )
    assert response.status_code == 200
    client.post("/admin/login/", {"username": "root", "password": "password"})
    assert client.session["_auth_user_id"]


def test_with_local_login_off_single_sign_on_still_works(client, local_login_off, organisation):
    assert idp_sign_in(client, "ada").status_code == 302
    assert client.get("/settings/tokens/").status_code == 200
