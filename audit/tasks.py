"""django-q2 entry points of the audit log (registered by ``migrations/0001_initial``)."""

from audit.services import audit_events_purge


def purge_audit_events() -> int:
    """Daily: remove events past ``STRONGBOX_AUDIT_RETENTION_DAYS``."""
    return audit_events_purge()
