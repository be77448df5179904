from tenants import selectors
from tokenmill.dashboard.mixins import current_membership


def current_organization(request) -> dict:
    """Template context for the navigation bar: the current organization and the switcher."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    membership = current_membership(request)
    return {
        "current_membership": membership,
        "current_organization": membership.tenant if membership else None,
        "user_organizations": selectors.user_organizations(user=request.user),
    }
