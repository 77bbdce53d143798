"""The audit log page (``/audit/``), through Django's client: admins only, their own
organisation's events, the API's filters (a bad one named on the form), paged."""

import pytest
from django.urls import reverse

from audit.context import Actor
from audit.services import audit_record

pytestmark = pytest.mark.django_db

URL = reverse("audit-log")


def _record(organisation, action="backup.trigger", name="alice"):
    return audit_record(organisation=organisation, action=action, actor=Actor("user", name, "1"))


def test_an_admin_sees_the_organisations_events_and_the_navigation_links_them(
    client, owner, organisation, other_organisation
):
    mine = _record(organisation, "backup.delete")
    theirs = _record(other_organisation, "backup.delete")
    client.force_login(owner)

    response = client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert f'href="{URL}"' in html
    shown = {event.id for event in response.context["page"]}
    assert mine.id in shown and theirs.id not in shown


@pytest.mark.parametrize("member", ["operator", "viewer"])
def test_operators_and_viewers_are_refused_and_see_no_link(client, request, member):
    client.force_login(request.getfixturevalue(member))
    assert client.get(URL).status_code == 403
    assert f'href="{URL}"' not in client.get(reverse("dashboard")).content.decode()


def test_the_filters_select_events_and_a_bad_date_is_named_on_the_form(client, owner, organisation):
    _record(organisation, "backup.delete", name="bob")
    _record(organisation, "restore.request", name="alice")
    client.force_login(owner)

    filtered = client.get(URL, {"action": "backup.*", "actor": "bob"}).context["page"]
    assert [e.action for e in filtered] == ["backup.delete"]

    response = client.get(URL, {"since": "last tuesday"})
    assert response.status_code == 200
    assert "since" in response.context["filter_form"].errors
    assert list(response.context["page"]) == []


def test_the_page_shows_fifty_events_at_a_time(client, owner, organisation):
    for _ in range(120):
        _record(organisation)
    client.force_login(owner)

    first = client.get(URL, {"action": "backup.trigger"}).context["page"]
    last = client.get(URL, {"action": "backup.trigger", "page": 3}).context["page"]

    assert len(first) == 50 and len(last) == 20 and first.paginator.count == 120
