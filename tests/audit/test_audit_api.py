"""``GET /api/audit-events``: the admin's view of its own organisation's log, newest first,
paged like seed 003's lists, with validated ``action``, ``actor`` and ``since`` filters and
a bounded number of queries however long the history."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.context import Actor
from audit.models import AuditEvent
from audit.services import AuditObject, audit_record
from organizations.models import Role

pytestmark = pytest.mark.django_db

URL = "/api/audit-events"


def _record(organisation, action="backup.trigger", *, at=None, actor=None, **kwargs):
    event = audit_record(
        organisation=organisation,
        action=action,
        actor=actor or Actor("user", "alice", "1"),
        obj=AuditObject("backup", "b-1", "nightly"),
        ip="203.0.113.9",
        **kwargs,
    )
    if at is not None:  # the log is append-only: move the row back with raw SQL
        with connection.cursor() as cursor:
            table = AuditEvent._meta.db_table
            cursor.execute(f"UPDATE {table} SET at = %s WHERE id = %s", [at, event.id.hex])  # noqa: S608
    return event


def test_the_list_has_the_documented_shape_newest_first(client_for, organisation):
    admin = client_for(organisation, Role.ADMIN)  # its token's creation is an event too
    _record(organisation, at=timezone.now() - timedelta(hours=1))
    newest = _record(organisation, "backup.delete", details={"size": 5})

    body = admin.get(URL, {"action": "backup.*"}).json()

    assert body["count"] == 2 and body["limit"] == 50 and body["offset"] == 0
    first = body["results"][0]
    assert first == {
        "id": str(newest.id),
        "at": first["at"],
        "actor": {"type": "user", "name": "alice"},
        "action": "backup.delete",
        "object": {"type": "backup", "id": "b-1", "name": "nightly"},
        "ip": "203.0.113.9",
        "outcome": "success",
        "details": {"size": 5},
    }
    assert [r["action"] for r in body["results"]] == ["backup.delete", "backup.trigger"]


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.VIEWER])
def test_operators_and_viewers_are_refused(client_for, organisation, role):
    _record(organisation)
    assert client_for(organisation, role).get(URL).status_code == 403


def test_anonymous_callers_are_refused(api_client):
    assert api_client.get(URL).status_code == 401


def test_another_organisations_events_are_never_listed(
    client_for, organisation, other_organisation
):
    admin, other_admin = client_for(organisation), client_for(other_organisation)
    mine = _record(organisation)
    theirs = _record(other_organisation, "backup.delete")
    _record(None, "keys.rotate")  # the installation's: in the Django admin only

    listed = {r["id"] for r in admin.get(URL).json()["results"]}
    listed_there = {r["id"] for r in other_admin.get(URL).json()["results"]}

    assert str(mine.id) in listed and str(theirs.id) not in listed
    assert str(theirs.id) in listed_there and str(mine.id) not in listed_there
    assert set(
        AuditEvent.objects.filter(organisation=organisation).values_list("id", flat=True)
    ) == {uuid.UUID(i) for i in listed}
    assert not any(r["action"] == "keys.rotate" for r in admin.get(URL).json()["results"])


def test_the_filters_select_by_action_family_actor_and_since(client_for, organisation):
    old = timezone.now() - timedelta(days=3)
    _record(organisation, "backup.trigger", at=old)
    _record(organisation, "backup.delete", actor=Actor("token", "CI", "7"))
    _record(organisation, "restore.request")
    admin = client_for(organisation, Role.ADMIN)

    def listed(**params):
        return [r["action"] for r in admin.get(URL, params).json()["results"]]

    assert listed(action="backup.delete") == ["backup.delete"]
    assert listed(action="backup.*") == ["backup.delete", "backup.trigger"]
    assert listed(actor="CI") == ["backup.delete"]
    assert listed(actor="token:CI") == ["backup.delete"]
    assert listed(actor="user:CI") == []
    assert "restore.request" in listed(actor="alice")
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert "backup.trigger" not in listed(since=since, action="backup.*")
    assert listed(since=since, action="backup.*") == ["backup.delete"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": ""}, "since"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
        ({"since": "9999-12-31T23:59:59-05:00"}, "since"),
        ({"action": "backup.explode"}, "action"),
        ({"action": "nothing.*"}, "action"),
        ({"actor": ""}, "actor"),
        ({"actor": "x" * 300}, "actor"),
        ({"limit": "many"}, "limit"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(client_for, organisation, params, field):
    response = client_for(organisation, Role.ADMIN).get(URL, params)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error["fields"], error


def test_the_list_pages_with_limit_and_offset(client_for, organisation):
    for _ in range(7):
        _record(organisation)
    admin = client_for(organisation, Role.ADMIN)
    first = admin.get(URL, {"limit": 3, "action": "backup.trigger"}).json()
    third = admin.get(URL, {"limit": 3, "offset": 6, "action": "backup.trigger"}).json()
    assert first["count"] == 7 and len(first["results"]) == 3
    assert len(third["results"]) == 1
    seen = {r["id"] for r in first["results"]} | {r["id"] for r in third["results"]}
    assert len(seen) == 4


def test_the_query_count_does_not_grow_with_the_history(client_for, organisation):
    admin = client_for(organisation, Role.ADMIN)

    def queries_for_a_page() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin.get(URL, {"limit": 100}).status_code == 200
        return len(captured)

    AuditEvent.objects.bulk_create(
        AuditEvent(
            organisation=organisation, actor_type="user", actor_name=f"u{i}", action="auth.login"
        )
        for i in range(10)
    )
    queries_for_a_page()  # the token's first use writes its last_used_at once
    few = queries_for_a_page()
    AuditEvent.objects.bulk_create(
        AuditEvent(
            organisation=organisation, actor_type="user", actor_name=f"u{i}", action="auth.login"
        )
        for i in range(2000)
    )
    many = queries_for_a_page()
    assert many == few <= 6
