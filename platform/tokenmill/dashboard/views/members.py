"""Members and invitations of the current organization.

The page is one view; each action posts to its own URL and, when a service refuses
it, renders the page again with the message beside the row or form it concerns.
The role rules (last owner, only owners touch owners) are the services'; the page
only hides controls a role cannot use.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views import View

from tenants import selectors, services
from tenants.errors import TenantError
from tenants.models import Invitation, Membership, Organization, Role
from tokenmill.dashboard.forms import InviteForm, RoleForm, add_service_error
from tokenmill.dashboard.mixins import TenantMixin


@dataclass(frozen=True)
class MemberRow:
    membership: Membership
    is_you: bool
    can_edit: bool
    can_remove: bool
    error: str = ""
    is_last_owner: bool = False


class MembersPage(TenantMixin, View):
    def tenant_queryset(self, tenant: Organization) -> QuerySet:
        return selectors.member_list(tenant=tenant)

    def _row(self, membership: Membership, error: str, *, owners: int) -> MemberRow:
        is_you = membership.pk == self.membership.pk
        may_touch = self.can(Role.ADMIN) and (
            membership.role != Role.OWNER or self.has_role(Role.OWNER)
        )
        # The last owner can be neither removed nor leave: the page does not offer it.
        last_owner = membership.role == Role.OWNER and owners == 1
        can_remove = (may_touch or (is_you and self.tenant.is_active)) and not last_owner
        return MemberRow(membership, is_you, may_touch, can_remove, error, last_owner)

    def render_page(
        self,
        *,
        status: int = 200,
        invite_form: InviteForm | None = None,
        row_error: tuple[str, str] | None = None,
        invited: tuple[Invitation, str] | None = None,
    ) -> HttpResponse:
        error_for, error = row_error or ("", "")
        assignable = services.roles_assignable_by(self.membership)
        members = list(selectors.member_list(tenant=self.tenant))
        owners = sum(1 for m in members if m.role == Role.OWNER)
        rows = [
            self._row(m, error if m.public_id == error_for else "", owners=owners) for m in members
        ]
        context = {
            "rows": rows,
            "invitations": selectors.invitation_list(tenant=self.tenant),
            "can_manage": self.can(Role.ADMIN),
            "role_choices": [(role, Role(role).label) for role in assignable],
            "invite_form": invite_form or InviteForm(roles=assignable),
            "invited": invited[0] if invited else None,
            "invitation_link": invited[1] if invited else "",
            "mail_to_console": settings.EMAIL_BACKEND.endswith("console.EmailBackend"),
        }
        response = render(self.request, "dashboard/members.html", context, status=status)
        if invited:
            add_never_cache_headers(response)  # the link is a credential: keep it in no cache
        return response


class MembersView(MembersPage):
    def get(self, request, *args, **kwargs) -> HttpResponse:
        return self.render_page()


class MemberInviteView(MembersPage):
    http_method_names = ["post"]
    write_role = Role.ADMIN

    def post(self, request, *args, **kwargs) -> HttpResponse:
        form = InviteForm(request.POST, roles=services.roles_assignable_by(self.membership))
        if form.is_valid():
            try:
                invitation, token = services.member_invite(
                    tenant=self.tenant,
                    actor=self.membership,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                )
            except TenantError as error:
                add_service_error(form, error)
            else:
                # The link exists only now (the invitation keeps a hash of its token):
                # show it once, for when the e-mail does not arrive.
                link = f"{settings.PUBLIC_URL}" + reverse(
                    "dashboard:invitation-accept", args=[token]
                )
                return self.render_page(invited=(invitation, link))
        return self.render_page(invite_form=form, status=400)


class MemberRoleView(MembersPage):
    http_method_names = ["post"]
    write_role = Role.ADMIN

    def post(self, request, public_id: str) -> HttpResponse:
        membership = self.get_tenant_object(public_id)
        form = RoleForm(request.POST)
        if not form.is_valid():
            return self.render_page(row_error=(public_id, "Choose a valid role."), status=400)
        try:
            membership = services.member_change_role(
                tenant=self.tenant,
                actor=self.membership,
                membership=membership,
                role=form.cleaned_data["role"],
            )
        except TenantError as error:
            return self.render_page(row_error=(public_id, error.message), status=error.status)
        messages.success(
            request, f"{membership.user.email} is now {Role(membership.role).label.lower()}."
        )
        return redirect("dashboard:members")


class MemberRemoveView(MembersPage):
    # Anyone may leave; removing someone else needs admin (owner for an owner).
    # The service enforces that; its refusal is shown on the member's row, with a 403.
    write_role = Role.VIEWER

    def get(self, request, public_id: str) -> HttpResponse:
        membership = self.get_tenant_object(public_id)
        leaving = membership.pk == self.membership.pk
        return render(
            request,
            "dashboard/confirm.html",
            {
                "title": f"Leave {self.tenant.name}?" if leaving else "Remove member?",
                "message": (
                    "You lose access to its API keys, members and settings. "
                    "Your API keys for it are revoked."
                    if leaving
                    else f"{membership.user.email} loses access to {self.tenant.name}, "
                    "and the API keys they created are revoked."
                ),
                "action": reverse("dashboard:member-remove", args=[public_id]),
                "button": "Leave organization" if leaving else "Remove member",
                "cancel": reverse("dashboard:members"),
            },
        )

    def post(self, request, public_id: str) -> HttpResponse:
        membership = self.get_tenant_object(public_id)
        try:
            services.member_remove(tenant=self.tenant, actor=self.membership, membership=membership)
        except TenantError as error:
            return self.render_page(row_error=(public_id, error.message), status=error.status)
        if membership.pk == self.membership.pk:
            messages.success(request, f"You left {self.tenant.name}.")
            return redirect("dashboard:home")
        messages.success(request, f"Removed {membership.user.email}.")
        return redirect("dashboard:members")


class InvitationRevokeView(MembersPage):
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    def tenant_queryset(self, tenant: Organization) -> QuerySet:
        return selectors.invitation_list(tenant=tenant, status=None)

    def get(self, request, public_id: str) -> HttpResponse:
        invitation = self.get_tenant_object(public_id)
        return render(
            request,
            "dashboard/confirm.html",
            {
                "title": f"Revoke the invitation for {invitation.email}?",
                "message": "Its link stops working at once. You can invite them again later.",
                "action": reverse("dashboard:invitation-revoke", args=[public_id]),
                "button": "Revoke invitation",
                "cancel": reverse("dashboard:members"),
            },
        )

    def post(self, request, public_id: str) -> HttpResponse:
        invitation = self.get_tenant_object(public_id)
        try:
            services.invitation_revoke(
                tenant=self.tenant, actor=self.membership, invitation=invitation
            )
        except TenantError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Revoked the invitation for {invitation.email}.")
        return redirect("dashboard:members")
