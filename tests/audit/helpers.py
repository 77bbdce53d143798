"""Reading the audit log in tests."""

from audit.models import AuditEvent


def events(organisation=None, **filters) -> list[AuditEvent]:
    """The events (of ``organisation`` when given), oldest first."""
    rows = AuditEvent.objects.filter(**filters)
    if organisation is not None:
        rows = rows.filter(organisation=organisation)
    return list(rows.order_by("at", "id"))


def actions(organisation=None, **filters) -> list[str]:
    return [event.action for event in events(organisation, **filters)]
