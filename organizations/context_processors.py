from organizations.tenancy import memberships_of


def tenancy(request):
    """The current organisation, the user's others, and the unread alerts badge."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    tenant = getattr(request, "tenant", None)
    unread = 0
    if tenant is not None:
        from alerts.selectors import alert_unread_count

        unread = alert_unread_count(organisation=tenant.organisation)
    return {
        "tenant": tenant,
        "memberships": memberships_of(request.user),
        "unread_alerts": unread,
    }
