"""Alerts inbox, the navigation badge and the API tokens page, through Django's client."""

import pytest
from django.urls import reverse

from alerts.models import Alert
from organizations.models import ApiToken, hash_token
from organizations.services import api_token_create
from tests import factories

pytestmark = pytest.mark.django_db


def test_the_badge_counts_unread_alerts_of_the_current_organisation_only(
    client, viewer, organisation, other_organisation
):
    factories.AlertFactory(organisation=organisation)
    factories.AlertFactory(organisation=organisation)
    factories.AlertFactory(organisation=other_organisation)
    client.force_login(viewer)
    response = client.get(reverse("dashboard"))
    assert response.context["unread_alerts"] == 2
    assert 'data-testid="alert-badge"' in response.content.decode()


def test_a_viewer_reads_the_inbox_but_cannot_dismiss(client, viewer, organisation):
    alert = factories.AlertFactory(organisation=organisation, title="Disk full")
    client.force_login(viewer)
    html = client.get(reverse("alerts-inbox")).content.decode()
    assert "Disk full" in html and "Dismiss" not in html
    assert client.post(reverse("alert-dismiss", args=[alert.id])).status_code == 403


def test_an_operator_marks_read_and_dismisses(client, operator, organisation):
    alert = factories.AlertFactory(organisation=organisation)
    client.force_login(operator)
    client.post(reverse("alert-read", args=[alert.id]))
    alert.refresh_from_db()
    assert alert.read_at is not None and alert.dismissed_at is None
    response = client.post(reverse("alert-dismiss", args=[alert.id]), {"next": "https://evil/"})
    assert response["Location"] == reverse("alerts-inbox")
    alert.refresh_from_db()
    assert alert.dismissed_at is not None
    assert alert.id not in {a.id for a in client.get(reverse("alerts-inbox")).context["page"]}
    shown_all = client.get(reverse("alerts-inbox"), {"show": "all"}).context["page"]
    assert alert.id in {a.id for a in shown_all}


def test_another_organisations_alert_is_not_found(client, outsider, organisation):
    alert = factories.AlertFactory(organisation=organisation)
    client.force_login(outsider)
    assert client.post(reverse("alert-dismiss", args=[alert.id])).status_code == 404
    assert Alert.objects.get(pk=alert.pk).dismissed_at is None


def test_creating_a_token_shows_it_once_and_stores_only_its_hash(client, owner, organisation):
    client.force_login(owner)
    response = client.post(reverse("api-tokens"), {"name": "CI", "role": "operator"})
    raw = response.context["new_token_value"]
    assert raw in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(name="CI")
    assert token.token_hash == hash_token(raw) and token.role == "operator"
    assert raw not in client.get(reverse("api-tokens")).content.decode()


def test_token_form_errors_are_shown_next_to_the_fields(client, owner, organisation):
    client.force_login(owner)
    response = client.post(reverse("api-tokens"), {"name": "", "role": "god"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_name_error_1"' in html and 'id="id_role_error_1"' in html


def test_revoking_a_token(client, owner, organisation):
    token, _ = api_token_create(organisation=organisation, name="old", role="viewer")
    client.force_login(owner)
    client.post(reverse("api-token-revoke", args=[token.id]))
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_only_admins_see_and_manage_tokens(client, operator, organisation):
    token, _ = api_token_create(organisation=organisation, name="old", role="viewer")
    client.force_login(operator)
    assert client.get(reverse("api-tokens")).status_code == 403
    assert client.post(reverse("api-token-revoke", args=[token.id])).status_code == 403
    assert "API tokens" not in client.get(reverse("dashboard")).content.decode()


def test_another_organisations_token_cannot_be_revoked(client, outsider, organisation):
    token, _ = api_token_create(organisation=organisation, name="theirs", role="viewer")
    client.force_login(outsider)
    assert client.post(reverse("api-token-revoke", args=[token.id])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_a_user_in_two_organisations_switches_between_them(
    client, owner, organisation, other_organisation
):
    factories.MembershipFactory(user=owner, organisation=other_organisation, role="viewer")
    factories.AlertFactory(organisation=other_organisation)
    client.force_login(owner)
    first = client.get(reverse("dashboard"))
    assert first.context["tenant"].organisation == organisation
    client.post(reverse("switch-organisation"), {"organisation": str(other_organisation.id)})
    second = client.get(reverse("dashboard"))
    assert second.context["tenant"].organisation == other_organisation
    assert second.context["unread_alerts"] == 1
    assert client.get(reverse("api-tokens")).status_code == 403  # a viewer there


def test_a_user_without_organisation_sees_an_explanation(client, db):
    user = factories.UserFactory(username="lonely")
    client.force_login(user)
    assert "not a member of any organisation" in client.get(reverse("dashboard")).content.decode()
    response = client.get(reverse("alerts-inbox"))
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")


def test_pages_remember_the_organisation_so_the_progress_stream_acts_in_it(
    client, owner, organisation, other_organisation, environment
):
    factories.MembershipFactory(user=owner, organisation=other_organisation, role="viewer")
    backup = factories.BackupFactory(environment=environment)
    client.force_login(owner)
    # Several organisations and none chosen yet: the API alone could not tell which.
    assert client.get(reverse("backup-detail", args=[backup.id])).status_code == 200
    response = client.get(f"/api/backups/{backup.id}/progress")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
