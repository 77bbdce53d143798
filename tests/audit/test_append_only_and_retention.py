"""The log is append-only: the ORM refuses to change or delete an event (one by one, in
bulk, through the admin); only the retention purge removes events, those past
``STRONGBOX_AUDIT_RETENTION_DAYS``, daily through django-q2. Details never hold secrets."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule

from audit.models import AppendOnly, AuditEvent
from audit.services import MASK, audit_events_purge, audit_record, masked
from audit.tasks import purge_audit_events

pytestmark = pytest.mark.django_db


def _event(organisation, *, days_old=0):
    event = audit_record(organisation=organisation, action="backup.trigger")
    if days_old:
        with connection.cursor() as cursor:
            table = AuditEvent._meta.db_table
            cursor.execute(
                f"UPDATE {table} SET at = %s WHERE id = %s",  # noqa: S608
                [timezone.now() - timedelta(days=days_old), event.id.hex],
            )
    return event


def test_an_event_cannot_be_changed_or_deleted_through_the_orm(organisation):
    event = _event(organisation)
    event.action = "backup.delete"

    with pytest.raises(AppendOnly):
        event.save()
    with pytest.raises(AppendOnly):
        event.delete()
    with pytest.raises(AppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(action="backup.delete")
    with pytest.raises(AppendOnly):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnly):
        AuditEvent.objects.bulk_update([event], ["action"])

    assert AuditEvent.objects.get().action == "backup.trigger"


def test_an_unknown_action_is_refused_when_recorded(organisation):
    with pytest.raises(ValueError, match="backup.explode"):
        audit_record(organisation=organisation, action="backup.explode")


def test_the_admin_shows_events_but_offers_no_add_change_or_delete(
    client, django_user_model, organisation
):
    event = _event(organisation)
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)

    assert client.get("/admin/audit/auditevent/").status_code == 200
    detail = client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert (
        client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_purge_removes_only_events_past_the_retention(
    organisation, other_organisation, settings
):
    settings.STRONGBOX_AUDIT_RETENTION_DAYS = 30
    kept = [_event(organisation, days_old=29), _event(other_organisation, days_old=1)]
    for _ in range(3):
        _event(organisation, days_old=31)
    _event(other_organisation, days_old=400)

    assert purge_audit_events() == 4

    assert set(AuditEvent.objects.values_list("id", flat=True)) == {e.id for e in kept}
    assert audit_events_purge() == 0


def test_the_purge_goes_in_batches_and_zero_days_keeps_everything(organisation, monkeypatch):
    monkeypatch.setattr("audit.services.PURGE_BATCH", 2)
    for _ in range(5):
        _event(organisation, days_old=10)

    assert audit_events_purge(days=0) == 0
    assert audit_events_purge(days=5) == 5
    assert not AuditEvent.objects.exists()


def test_the_purge_runs_daily_through_django_q():
    schedule = Schedule.objects.get(func="audit.tasks.purge_audit_events")
    assert (schedule.schedule_type, schedule.repeats) == (Schedule.DAILY, -1)


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        ({"password": "hunter2"}, {"password": MASK}),
        ({"nested": {"secret_access_key": "abc", "access_key_id": "AKIA"}}, None),
        ({"token": "sbx_abc"}, {"token": MASK}),
        (
            {"url": "https://user:pa55@hooks.example.com/x"},
            {"url": f"https://user:{MASK}@hooks.example.com/x"},
        ),
        (
            {"url": "https://tok3n@hooks.example.com/x"},
            {"url": f"https://{MASK}@hooks.example.com/x"},
        ),
        ({"note": "AGE-SECRET-KEY-1QQQQ"}, {"note": MASK}),
        ({"token_prefix": "sbx_abcdefgh", "key_id": "k1", "master_keys": "ab12"}, "same"),
        (
            {"after": {"urls": ["postgres://app:pw@db/x"]}},
            {"after": {"urls": [f"postgres://app:{MASK}@db/x"]}},
        ),
        ({"password": ""}, {"password": ""}),
    ],
)
def test_secrets_are_masked_wherever_they_are_in_the_details(details, expected):
    if expected is None:
        assert masked(details) == {"nested": {"secret_access_key": MASK, "access_key_id": MASK}}
    elif expected == "same":
        assert masked(details) == details
    else:
        assert masked(details) == expected


def test_recorded_details_are_masked(organisation):
    event = audit_record(
        organisation=organisation,
        action="destination.update",
        details={"after": {"webhook": "https://u:secretpw@example.com"}, "password": "x"},
    )
    event.refresh_from_db()
    assert "secretpw" not in str(event.details) and event.details["password"] == MASK
