"""Single sign-on in Chromium, end to end: Strongbox (uvicorn, configured by environment
variables as in production) and a real OpenID provider (Node's oidc-provider,
tests/fixtures/oidc.py) on loopback, the browser going through the provider's login and
consent pages and back.

A mapped admin lands on the dashboard of the mapped organisation and can open an
admin-only page; a viewer is refused an operator action; a user whose groups map to nothing
is told they have no access, and no user is kept; the second organisation is untouched.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from organizations.models import Membership, MembershipSource, Role
from tests import factories
from tests.ui.conftest import ARTIFACTS, ROOT, _stop, _wait_until_up

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def sso_app(server_env, oidc_provider):
    """uvicorn serving Strongbox with single sign-on through the test provider, and local
    password sign-in turned off."""
    log = ARTIFACTS / "logs" / "uvicorn-sso.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**server_env, **oidc_provider.settings(), "STRONGBOX_LOCAL_LOGIN": "0"}
    argv = [sys.executable, "-m", "uvicorn", "config.asgi:application"]
    argv += ["--host", "127.0.0.1", "--port", str(oidc_provider.app_port)]
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [*argv, "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{oidc_provider.app_port}"
    try:
        _wait_until_up(f"{base}/login/", process, log)
        yield base
    finally:
        _stop(process)


@pytest.fixture
def sso_page(browser, sso_app, oidc_accounts, transactional_db):
    context = browser.new_context(base_url=sso_app, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def tenants(transactional_db):
    """Quant Gov (named by the role map) with an environment, and Elsewhere with its own
    admin and environment."""
    quant = factories.OrganisationFactory(name="Quant Gov", slug="quant-gov")
    environment = factories.EnvironmentFactory(project__organisation=quant, name="Production")
    factories.DatabaseFactory(environment=environment)
    factories.DestinationFactory(organisation=quant)
    elsewhere = factories.OrganisationFactory(name="Elsewhere", slug="elsewhere")
    theirs = factories.EnvironmentFactory(project__organisation=elsewhere)
    stranger = factories.UserFactory(username="stranger")
    factories.MembershipFactory(user=stranger, organisation=elsewhere, role=Role.ADMIN)
    return environment, theirs


def sso_sign_in(page, login: str) -> None:
    """From Strongbox's sign-in page through the provider's login and consent pages."""
    page.goto("/login/")
    expect(page.get_by_label("Password")).to_have_count(0)
    page.get_by_role("link", name="Sign in with Test IdP").click()
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()


def memberships(username: str) -> dict[str, tuple[str, str]]:
    rows = Membership.objects.filter(user__username=username).select_related("organisation")
    return {m.organisation.slug: (m.role, m.source) for m in rows}


def test_a_mapped_admin_signs_in_through_the_provider_and_administers_its_organisation(
    sso_page, sso_app, tenants, screenshot
):
    environment, theirs = tenants
    page = sso_page
    page.goto("/login/")
    screenshot(page, "sso-login")

    sso_sign_in(page, "ada")

    page.wait_for_url(re.compile(rf"^{re.escape(sso_app)}/$"))
    expect(page.get_by_role("link", name="API tokens")).to_be_visible()
    expect(page.locator(".org")).to_have_text("Quant Gov")
    expect(page.locator(".user")).to_have_text("ada (admin)")
    screenshot(page, "sso-dashboard-admin")
    assert memberships("ada") == {"quant-gov": (Role.ADMIN, MembershipSource.SSO)}

    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()

    # The other organisation: its environment is a 404, its members as they were.
    answer = page.goto(f"/projects/{theirs.project_id}/environments/{theirs.id}/")
    assert answer.status == 404
    assert memberships("stranger") == {"elsewhere": (Role.ADMIN, MembershipSource.MANUAL)}


def test_a_viewer_signed_in_through_the_provider_is_refused_an_operator_action(sso_page, tenants):
    environment, _ = tenants
    page = sso_page
    sso_sign_in(page, "vic")
    expect(page.locator(".org")).to_have_text("Quant Gov")
    expect(page.locator(".user")).to_have_text("vic (viewer)")
    expect(page.get_by_role("link", name="API tokens")).to_have_count(0)
    assert memberships("vic") == {"quant-gov": (Role.VIEWER, MembershipSource.SSO)}

    page.goto(f"/projects/{environment.project_id}/environments/{environment.id}/")
    expect(page.get_by_role("heading", name="Production")).to_be_visible()
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    refused = page.request.post(
        f"/environments/{environment.id}/backups/new/",
        form={"kind": "database"},
        headers={"X-CSRFToken": csrf, "Referer": page.url},
    )
    assert refused.status == 403
    assert not environment.backups.exists()
    assert page.goto("/settings/tokens/").status == 403


def test_a_user_whose_groups_map_to_nothing_is_told_and_not_kept(
    sso_page, sso_app, tenants, django_user_model, screenshot
):
    page = sso_page
    users = django_user_model.objects.count()

    sso_sign_in(page, "nemo")

    expect(
        page.get_by_role("heading", name="Your account has no access to Strongbox")
    ).to_be_visible()
    expect(page.get_by_text("contractors")).to_be_visible()
    screenshot(page, "sso-denied")
    assert django_user_model.objects.count() == users
    page.goto("/")
    expect(page).to_have_url(f"{sso_app}/login/?next=/")
