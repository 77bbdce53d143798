"""What every page's layout shows: it reads several apps, so it lives with the composed pages."""

from alerts.selectors import alert_unread_count
from backups.keys import backups_encrypted
from organizations.tenancy import memberships_of


def tenancy(request):
    """The current organisation, the user's others, the unread alerts badge, and whether
    backups are stored unencrypted (a banner on every page)."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    tenant = getattr(request, "tenant", None)
    unread = 0
    if tenant is not None:
        unread = alert_unread_count(organisation=tenant.organisation)
    return {
        "tenant": tenant,
        "memberships": memberships_of(request.user),
        "unread_alerts": unread,
        "backups_unencrypted": not backups_encrypted(tenant.organisation if tenant else None),
    }
