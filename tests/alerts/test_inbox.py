"""Reading, dismissing and counting alerts, each organisation seeing only its own."""

import uuid

import pytest

from alerts.selectors import alert_get, alert_unread_count, alerts_for_organisation
from alerts.services import alert_dismiss, alert_mark_read
from config.errors import NotFound
from tests import factories


@pytest.fixture
def alerts(organisation):
    return [factories.AlertFactory(organisation=organisation) for _ in range(3)]


@pytest.fixture
def foreign_alert(other_organisation):
    return factories.AlertFactory(organisation=other_organisation)


def test_the_list_shows_the_organisations_undismissed_alerts(
    organisation, owner, alerts, foreign_alert
):
    alert_dismiss(alert=alerts[0], user=owner)

    listed = set(alerts_for_organisation(organisation=organisation))

    assert listed == {alerts[1], alerts[2]}


def test_the_list_includes_dismissed_alerts_when_asked(organisation, owner, alerts):
    alert_dismiss(alert=alerts[0], user=owner)

    listed = alerts_for_organisation(organisation=organisation, include_dismissed=True)

    assert set(listed) == set(alerts)


def test_the_unread_count_leaves_out_read_dismissed_and_foreign_alerts(
    organisation, other_organisation, operator, outsider, alerts, foreign_alert
):
    alert_mark_read(alert=alerts[0], user=operator)
    alert_dismiss(alert=alerts[1], user=operator)

    assert alert_unread_count(organisation=organisation) == 1
    assert alert_unread_count(organisation=other_organisation) == 1


def test_reading_or_dismissing_again_keeps_the_first_time(operator, viewer, alerts):
    first_read = alert_mark_read(alert=alerts[0], user=operator).read_at
    first_dismissed = alert_dismiss(alert=alerts[0], user=operator).dismissed_at

    assert alert_mark_read(alert=alerts[0], user=viewer).read_at == first_read
    assert alert_dismiss(alert=alerts[0], user=viewer).dismissed_at == first_dismissed


def test_reading_does_not_dismiss(operator, alerts):
    alert = alert_mark_read(alert=alerts[0], user=operator)

    assert alert.read_at is not None
    assert alert.dismissed_at is None


def test_an_alert_is_found_by_its_id_as_uuid_or_text(organisation, alerts):
    assert alert_get(organisation=organisation, alert_id=alerts[0].pk) == alerts[0]
    assert alert_get(organisation=organisation, alert_id=str(alerts[0].pk)) == alerts[0]


@pytest.mark.parametrize("alert_id", ["not-a-uuid", str(uuid.uuid4()), None])
def test_unknown_and_malformed_ids_are_not_found(organisation, alerts, alert_id):
    with pytest.raises(NotFound):
        alert_get(organisation=organisation, alert_id=alert_id)


def test_an_alert_of_another_organisation_is_not_found(organisation, outsider, foreign_alert):
    with pytest.raises(NotFound):
        alert_get(organisation=organisation, alert_id=foreign_alert.pk)


def test_dismissing_an_unread_alert_reads_it_too(operator, alerts):
    alert = alert_dismiss(alert=alerts[0], user=operator)

    assert alert.dismissed_at is not None
    assert alert.read_at == alert.dismissed_at


def test_dismissing_a_read_alert_keeps_when_it_was_read(operator, alerts):
    read_at = alert_mark_read(alert=alerts[0], user=operator).read_at

    assert alert_dismiss(alert=alerts[0], user=operator).read_at == read_at
