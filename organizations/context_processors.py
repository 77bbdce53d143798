from organizations.tenancy import memberships_of


def tenancy(request):
    """The current organisation, the user's others, the unread alerts badge, and whether
    backups are stored unencrypted (a banner on every page)."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    tenant = getattr(request, "tenant", None)
    unread = 0
    if tenant is not None:
        from alerts.selectors import alert_unread_count

        unread = alert_unread_count(organisation=tenant.organisation)
    from backups.keys import backups_encrypted

    return {
        "tenant": tenant,
        "memberships": memberships_of(request.user),
        "unread_alerts": unread,
        "backups_unencrypted": not backups_encrypted(tenant.organisation if tenant else None),
    }
