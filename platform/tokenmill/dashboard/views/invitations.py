"""The page an invitation e-mail links to: settings.PUBLIC_URL + /invitations/<token>/.

Anyone holding the link may see which organization invites whom, and with what
role; accepting needs an account signed in with the invited address.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from tenants import services
from tenants.errors import TenantError
from tenants.models import Invitation, Role
from tokenmill.dashboard.mixins import switch_organization

# A link that never was (or was used or revoked) is "not found"; an old one is "gone".
_STATUS_FOR_CODE = {"invalid_invitation": 404, "invitation_expired": 410}


class InvitationAcceptView(View):
    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        try:
            invitation = services.invitation_get_by_token(token)
        except TenantError as error:
            return self._invalid(request, error)
        return self._page(request, invitation)

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.path)
        try:
            membership = services.invitation_accept(token=token, user=request.user)
        except TenantError as error:
            try:
                invitation = services.invitation_get_by_token(token)
            except TenantError:
                return self._invalid(request, error)
            return self._page(request, invitation, error=error.message, status=error.status)
        switch_organization(request, membership.tenant.public_id)
        messages.success(
            request,
            f"You joined {membership.tenant.name} as {Role(membership.role).label.lower()}.",
        )
        return redirect("dashboard:home")

    def _page(
        self, request: HttpRequest, invitation: Invitation, *, error: str = "", status: int = 200
    ) -> HttpResponse:
        here = {"next": request.path}
        return render(
            request,
            "dashboard/invitation_accept.html",
            {
                "invitation": invitation,
                "role_label": Role(invitation.role).label.lower(),
                "error": error,
                "email_matches": request.user.is_authenticated
                and request.user.email.lower() == invitation.email.lower(),
                "signup_url": reverse("dashboard:signup")
                + "?"
                + urlencode({**here, "email": invitation.email}),
                "login_url": reverse("dashboard:login") + "?" + urlencode(here),
            },
            status=status,
        )

    def _invalid(self, request: HttpRequest, error: TenantError) -> HttpResponse:
        return render(
            request,
            "dashboard/invitation_accept.html",
            {"invalid": error.message},
            status=_STATUS_FOR_CODE.get(error.code, error.status),
        )
