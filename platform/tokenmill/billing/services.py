"""Billing writes: the periodic run, plan and limit changes, checkout links."""

from dataclasses import asdict
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from tenants.errors import TenantError
from tenants.models import Organization
from tokenmill.billing import stripe_api, sync
from tokenmill.billing.accounts import account_for, holds_apply, limit_alerts_send
from tokenmill.billing.models import Account, Plan, Statement
from tokenmill.billing.statements import month_bounds, month_start, statement_close
from tokenmill.metering.models import LedgerEntry

#: A month is closed this long after it ends, so late usage still reaches its statement.
CLOSE_AFTER = timedelta(days=1)
TOP_UP_MIN = Decimal("5")
TOP_UP_MAX = Decimal("10000")


def statements_close(*, now: datetime | None = None) -> int:
    """Store last month's statement of every organization that used the platform in it."""
    now = now or timezone.now()
    month = month_start(month_start(now - CLOSE_AFTER) - timedelta(days=1))
    start, end = month_bounds(month)
    used = set(
        LedgerEntry.unscoped.filter(hour__gte=start, hour__lt=end)
        .values_list("tenant_id", flat=True)
        .distinct()
    )
    done = set(Statement.unscoped.filter(month=month).values_list("tenant_id", flat=True))
    closed = 0
    for tenant in Organization.objects.filter(pk__in=used - done):
        statement_close(tenant=tenant, month=month, now=now)
        closed += 1
    return closed


def billing_run(*, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    held = holds_apply(now=now)
    alerts = limit_alerts_send(now=now)
    closed = statements_close(now=now)
    result = sync.sync_run()
    return {"held": held, "alerts": alerts, "closed": closed, **asdict(result)}


def plan_set(
    *, tenant: Organization, plan: str, monthly_spend_limit: Decimal | None = None
) -> Account:
    """An operator's (or a checkout's) change of plan and limit."""
    if plan not in Plan.values:
        raise TenantError(f"Unknown plan {plan!r}.", code="invalid_plan", param="plan")
    account = account_for(tenant=tenant)
    account.plan = plan
    account.monthly_spend_limit = monthly_spend_limit
    account.save(update_fields=["plan", "monthly_spend_limit"])
    return account


def _return_urls() -> tuple[str, str]:
    base = settings.BILLING_RETURN_URL
    return f"{base}?checkout=done", f"{base}?checkout=cancelled"


def checkout_card_url(*, tenant: Organization) -> str:
    account = account_for(tenant=tenant)
    success, cancel = _return_urls()
    return stripe_api.checkout_card_session(
        customer_id=sync.customer_ensure(account=account), success_url=success, cancel_url=cancel
    )


def checkout_top_up_url(*, tenant: Organization, amount: Decimal) -> str:
    if not TOP_UP_MIN <= amount <= TOP_UP_MAX or amount != amount.quantize(Decimal("0.01")):
        raise TenantError(
            f"A top-up is between ${TOP_UP_MIN} and ${TOP_UP_MAX}, in whole cents.",
            code="invalid_amount",
            param="amount",
        )
    account = account_for(tenant=tenant)
    success, cancel = _return_urls()
    return stripe_api.checkout_top_up_session(
        customer_id=sync.customer_ensure(account=account),
        organization_public_id=tenant.public_id,
        amount_cents=int(amount * 100),
        success_url=success,
        cancel_url=cancel,
    )


def portal_url(*, tenant: Organization) -> str:
    account = account_for(tenant=tenant)
    return stripe_api.portal_session(
        customer_id=sync.customer_ensure(account=account),
        return_url=settings.BILLING_RETURN_URL,
    )
