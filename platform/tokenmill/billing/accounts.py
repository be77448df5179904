"""Billing accounts, credit grants and the monthly spend limit.

`spend_allowance` is what admission reserves against: the micro-dollars an
organization may still spend this month (UTC), credits left first, then what its plan
and limit allow.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from tenants.models import Membership, Organization, Role
from tenants.services import organization_billing_hold_set
from tokenmill.billing.models import Account, CreditGrant, Plan
from tokenmill.billing.pricing import cost_micros_exact, prices_for
from tokenmill.billing.statements import (
    credit_available,
    month_bounds,
    month_start,
    usage_groups,
)

ALERT_SHARE = Decimal("0.8")


def account_for(*, tenant: Organization) -> Account:
    """The organization's account, created on first use (a Free plan with its trial credit)."""
    account = Account.objects.for_tenant(tenant).first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            account = Account.objects.create(tenant=tenant)
            if settings.BILLING_TRIAL_CREDIT > 0:
                CreditGrant.objects.create(
                    tenant=tenant,
                    kind=CreditGrant.Kind.TRIAL,
                    amount=settings.BILLING_TRIAL_CREDIT,
                    reason="Trial credit of the Free plan",
                )
            return account
    except IntegrityError:  # created concurrently
        return Account.objects.for_tenant(tenant).get()


def credit_grant(
    *,
    tenant: Organization,
    kind: str,
    amount: Decimal,
    reason: str,
    granted_by=None,
    stripe_reference: str | None = None,
) -> CreditGrant:
    if not isinstance(amount, Decimal):
        raise TypeError("credit amounts are Decimal")
    if not reason.strip():
        raise ValueError("a credit grant says why it was made")
    if kind != CreditGrant.Kind.ADJUSTMENT and amount <= 0:
        raise ValueError("only an adjustment may be zero or negative")
    account_for(tenant=tenant)
    return CreditGrant.objects.create(
        tenant=tenant,
        kind=kind,
        amount=amount,
        reason=reason.strip(),
        granted_by=granted_by,
        stripe_reference=stripe_reference,
    )


def effective_limit(account: Account) -> Decimal | None:
    """Dollars a month beyond credits; None: no limit."""
    if account.plan == Plan.FREE:
        return Decimal("0")
    if account.monthly_spend_limit is not None:
        return account.monthly_spend_limit
    if account.plan == Plan.PAY_AS_YOU_GO:
        return settings.BILLING_PAYG_MONTHLY_LIMIT
    return None


@dataclass(frozen=True)
class MonthSpend:
    month_start: datetime
    cost_micros: Decimal  # exact, unrounded, all usage this month
    credits_available: Decimal  # dollars this month may use
    credits_used_micros: Decimal
    charged_micros: Decimal  # beyond credits
    limit: Decimal | None

    @property
    def credits_left(self) -> Decimal:
        return self.credits_available - self.credits_used_micros / 1_000_000

    @property
    def limit_share(self) -> Decimal | None:
        """How much of the limit is spent (1 = all); None without a limit."""
        if self.limit is None:
            return None
        if self.limit == 0:
            return Decimal("1") if self.charged_micros > 0 else Decimal("0")
        return self.charged_micros / (self.limit * 1_000_000)


def month_cost_micros(
    *, tenant: Organization, start: datetime, end: datetime, kinds: list[str] | None = None
) -> Decimal:
    total = Decimal("0")
    for group in usage_groups(tenant=tenant, start=start, end=end, kinds=kinds):
        prices = prices_for(
            tenant_id=tenant.pk, model=group["model"], base_model=group["base_model"]
        )
        total += cost_micros_exact(
            prices,
            kind=group["kind"],
            prompt_tokens=group["prompt"] or 0,
            completion_tokens=group["completion"] or 0,
        )
    return total


def month_spend(*, tenant: Organization, now: datetime | None = None) -> MonthSpend:
    now = now or timezone.now()
    month = month_start(now)
    start, end = month_bounds(month)
    account = account_for(tenant=tenant)
    cost = month_cost_micros(tenant=tenant, start=start, end=end)
    available = credit_available(tenant=tenant, month=month)
    used = min(cost, max(Decimal("0"), available) * 1_000_000)
    return MonthSpend(
        month_start=start,
        cost_micros=cost,
        credits_available=available,
        credits_used_micros=used,
        charged_micros=cost - used,
        limit=effective_limit(account),
    )


def spend_allowance(*, tenant_id: int, now: datetime | None = None) -> int | None:
    """Micro-dollars the organization may still spend this month; None: no limit.

    Credits left plus what the limit still allows beyond them (Free: credits only;
    Pay as you go: its limit or BILLING_PAYG_MONTHLY_LIMIT; Enterprise: its limit, or
    none). 0 while the organization is on a billing hold. It reads the month's ledger
    (one grouped query) and the grants: call it to seed a reservation, not per token.
    """
    tenant = Organization.objects.get(pk=tenant_id)
    if tenant.billing_hold:
        return 0
    spend = month_spend(tenant=tenant, now=now)
    credits_left = max(
        Decimal("0"), spend.credits_available * 1_000_000 - spend.credits_used_micros
    )
    if spend.limit is None:
        return None
    beyond = max(Decimal("0"), spend.limit * 1_000_000 - spend.charged_micros)
    return math.floor(credits_left + beyond)


def limit_alerts_send(*, now: datetime | None = None) -> int:
    """E-mail the owners of each organization past 80 % of its limit, once a month."""
    now = now or timezone.now()
    month = month_start(now)
    sent = 0
    for account in Account.unscoped.select_related("tenant").exclude(plan=Plan.FREE):
        if account.limit_alert_month == month:
            continue
        spend = month_spend(tenant=account.tenant, now=now)
        share = spend.limit_share
        if share is None or share < ALERT_SHARE:
            continue
        # The conditional update decides who sends, so concurrent runs send one e-mail.
        claimed = (
            Account.unscoped.filter(pk=account.pk)
            .exclude(limit_alert_month=month)
            .update(limit_alert_month=month)
        )
        if not claimed:
            continue
        owners = Membership.unscoped.filter(
            tenant=account.tenant, role=Role.OWNER, user__is_active=True
        ).values_list("user__email", flat=True)
        percent = int(min(share, Decimal("9.99")) * 100)
        send_mail(
            subject=f"{account.tenant.name} has used {percent}% of its monthly spend limit",
            message=(
                f"Your organization {account.tenant.name} has spent ${spend.charged_micros / 1_000_000:.2f} "
                f"of its ${spend.limit:.2f} monthly limit in {now:%B %Y}. At 100% its "
                "requests are refused until the next month or until the limit is raised."
            ),
            from_email=None,
            recipient_list=list(owners),
        )
        sent += 1
    return sent


def holds_apply(*, now: datetime | None = None) -> int:
    """Put organizations whose payment failed more than BILLING_GRACE_DAYS ago on hold."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.BILLING_GRACE_DAYS)
    held = 0
    overdue = Account.unscoped.filter(
        payment_failed_at__isnull=False, payment_failed_at__lte=cutoff, tenant__billing_hold=False
    ).select_related("tenant")
    for account in overdue:
        organization_billing_hold_set(organization=account.tenant, held=True)
        held += 1
    return held
