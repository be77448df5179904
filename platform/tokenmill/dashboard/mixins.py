"""The one mixin every dashboard page builds on.

It resolves the current organization from the session (only ever one the user is
a member of), exposes it as `self.tenant` and `request.tenant`, and builds every
queryset from it. Overriding `get_queryset` is refused at class creation.

A role the page needs, or a TenantPermissionError a service raises while the view
runs, ends the request with the 403 page: the view never goes on past it.
"""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from tenants import selectors
from tenants.errors import TenantPermissionError
from tenants.models import Membership, Organization, Role
from tokenmill.dashboard.views.errors import forbidden

SESSION_KEY = "organization_id"


def current_membership(request) -> Membership | None:
    """The membership of the session's organization, falling back to the user's first one."""
    if not request.user.is_authenticated:
        return None
    memberships = Membership.unscoped.filter(user=request.user).select_related("tenant", "user")
    wanted = request.session.get(SESSION_KEY)
    membership = memberships.filter(tenant__public_id=wanted).first() if wanted else None
    if membership is None:
        membership = memberships.order_by("tenant__name").first()
        if membership is not None:
            request.session[SESSION_KEY] = membership.tenant.public_id
    return membership


def switch_organization(request, public_id: str) -> Organization:
    organization = (
        selectors.user_organizations(user=request.user).filter(public_id=public_id).first()
    )
    if organization is None:
        raise Http404("No such organization")
    request.session[SESSION_KEY] = organization.public_id
    return organization


class TenantMixin(LoginRequiredMixin):
    #: the least role that may open the page (GET) and submit it (POST)
    read_role: str = Role.VIEWER
    write_role: str = Role.MEMBER

    tenant: Organization
    membership: Membership

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides get_queryset; define tenant_queryset(tenant) instead"
            )

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return self._dispatch_for_tenant(request, *args, **kwargs)
        except TenantPermissionError as error:
            return forbidden(request, error.message)

    def _dispatch_for_tenant(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        membership = current_membership(request)
        if membership is None:
            return redirect("dashboard:organization-create")
        self.membership, self.tenant = membership, membership.tenant
        request.tenant = self.tenant
        reading = request.method in ("GET", "HEAD")
        if not reading and not self.tenant.is_active:
            # A suspended organization can still look at its data, but change nothing.
            raise TenantPermissionError(
                f"{self.tenant.name} is suspended, so nothing can be changed. Contact support.",
                code="organization_suspended",
            )
        needed = self.read_role if reading else self.write_role
        if not membership.has_role(needed):
            raise TenantPermissionError(
                f"Your role ({membership.role}) cannot do this; it needs {needed} or above.",
                code="insufficient_role",
            )
        return super().dispatch(request, *args, **kwargs)

    def has_role(self, at_least: str) -> bool:
        return self.membership.has_role(at_least)

    def can(self, at_least: str) -> bool:
        """Whether the page offers a change that needs `at_least`: never while suspended."""
        return self.tenant.is_active and self.has_role(at_least)

    def tenant_queryset(self, tenant: Organization) -> QuerySet:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet:
        return self.tenant_queryset(self.tenant)

    def get_tenant_object(self, public_id: str) -> Model:
        obj = self.get_queryset().filter(public_id=public_id).first()
        if obj is None:  # missing and another tenant's look the same
            raise Http404("Not found")
        return obj
