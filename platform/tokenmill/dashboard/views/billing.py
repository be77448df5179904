"""Billing: this month's spend, limit and credits, statements, invoices, Stripe links."""

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views import View

from tenants.errors import TenantError
from tenants.models import Role
from tokenmill.billing import selectors, services, stripe_api
from tokenmill.dashboard.mixins import TenantMixin


class BillingView(TenantMixin, View):
    read_role = Role.VIEWER

    def get(self, request, *args, **kwargs) -> HttpResponse:
        context = selectors.billing_overview(tenant=self.tenant)
        context["can_manage"] = self.can(Role.ADMIN)
        return render(request, "dashboard/billing.html", context)


class BillingCheckoutView(TenantMixin, View):
    """Sends an admin to Stripe: Checkout (a card, a credit top-up) or the customer portal."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN

    def post(self, request, *args, **kwargs) -> HttpResponse:
        if not stripe_api.configured():
            messages.error(request, "Stripe is not configured: billing runs ledger-only here.")
            return redirect("dashboard:billing")
        action = request.POST.get("action")
        try:
            if action == "card":
                url = services.checkout_card_url(tenant=self.tenant)
            elif action == "portal":
                url = services.portal_url(tenant=self.tenant)
            elif action == "top_up":
                url = services.checkout_top_up_url(
                    tenant=self.tenant, amount=_amount(request.POST.get("amount", ""))
                )
            else:
                raise TenantError("Unknown billing action.", code="invalid_action")
        except TenantError as error:
            messages.error(request, error.message)
            return redirect("dashboard:billing")
        except (stripe_api.StripeRetryable, stripe_api.StripeRefused):
            messages.error(request, "Stripe could not be reached just now; try again shortly.")
            return redirect("dashboard:billing")
        return redirect(url)


def _amount(raw: str) -> Decimal:
    try:
        amount = Decimal(raw.strip().removeprefix("$"))
    except InvalidOperation:
        raise TenantError(
            f"{raw!r} is not an amount in dollars.", code="invalid_amount", param="amount"
        ) from None
    if not amount.is_finite():
        raise TenantError("The amount must be a number.", code="invalid_amount", param="amount")
    return amount
