from django.conf import settings

from tenants import selectors
from tenants.models import Role
from tokenmill.dashboard.mixins import current_membership


def current_organization(request) -> dict:
    """Template context for the navigation bar: the current organization and the switcher."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    membership = current_membership(request)
    suspended = membership is not None and not membership.tenant.is_active
    return {
        "current_membership": membership,
        "current_organization": membership.tenant if membership else None,
        "user_organizations": selectors.user_organizations(user=request.user),
        # A suspended organization's pages show its data and offer no change.
        "organization_suspended": suspended,
        "can_write": membership is not None and not suspended and membership.has_role(Role.MEMBER),
        "support_email": settings.SUPPORT_EMAIL,
    }
