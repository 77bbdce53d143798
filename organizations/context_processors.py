from organizations.tenancy import memberships_of


def tenancy(request):
    """The current organisation and the user's others, for the navigation bar."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {
        "tenant": getattr(request, "tenant", None),
        "memberships": memberships_of(request.user),
    }
