"""Billing reads: the public price list, an organization's spend, statements and invoices."""

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from tenants.models import Organization
from tokenmill.billing import stripe_api
from tokenmill.billing.accounts import account_for, effective_limit, month_spend
from tokenmill.billing.models import CreditGrant, Invoice, Plan, Statement
from tokenmill.billing.pricing import cost_micros_exact, prices_for
from tokenmill.billing.statements import (
    CENT,
    month_bounds,
    month_start,
    statement_compute,
    stored_statement,
)
from tokenmill.catalog.models import BaseModel
from tokenmill.metering.models import LedgerEntry


def pricing_page() -> dict:
    """The public price list, straight from the catalog."""
    models = BaseModel.objects.filter(status=BaseModel.Status.ACTIVE).order_by("kind", "model_id")
    return {
        "models": list(models),
        "trial_credit": settings.BILLING_TRIAL_CREDIT,
        "payg_limit": settings.BILLING_PAYG_MONTHLY_LIMIT,
        "plans": Plan,
    }


def _dollars(micros: Decimal) -> Decimal:
    return (micros / 1_000_000).quantize(CENT, rounding=ROUND_HALF_UP)


def spend_by(*, tenant: Organization, start: datetime, end: datetime, field: str) -> list[dict]:
    """This period's cost per model or per key (display amounts, rounded per row)."""
    rows = (
        LedgerEntry.objects.for_tenant(tenant)
        .filter(hour__gte=start, hour__lt=end)
        .values(field, "model", "base_model", "kind")
        .annotate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
    )
    totals: dict[str, dict] = {}
    for row in rows:
        prices = prices_for(tenant_id=tenant.pk, model=row["model"], base_model=row["base_model"])
        cost = cost_micros_exact(
            prices,
            kind=row["kind"],
            prompt_tokens=row["prompt"] or 0,
            completion_tokens=row["completion"] or 0,
        )
        item = totals.setdefault(
            row[field], {"name": row[field], "tokens": 0, "micros": Decimal(0)}
        )
        item["tokens"] += (row["prompt"] or 0) + (row["completion"] or 0)
        item["micros"] += cost
    items = sorted(totals.values(), key=lambda item: -item["micros"])
    for item in items:
        item["amount"] = _dollars(item.pop("micros"))
    return items


def daily_spend(*, tenant: Organization, start: datetime, end: datetime) -> list[dict]:
    rows = (
        LedgerEntry.objects.for_tenant(tenant)
        .filter(hour__gte=start, hour__lt=end)
        .annotate(day=TruncDay("hour"))
        .values("day", "model", "base_model", "kind")
        .annotate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
    )
    days: dict = {}
    for row in rows:
        prices = prices_for(tenant_id=tenant.pk, model=row["model"], base_model=row["base_model"])
        days[row["day"].date()] = days.get(row["day"].date(), Decimal(0)) + cost_micros_exact(
            prices,
            kind=row["kind"],
            prompt_tokens=row["prompt"] or 0,
            completion_tokens=row["completion"] or 0,
        )
    out, day = [], start.date()
    while day < min(end, timezone.now() + timedelta(days=1)).date():
        out.append({"day": day, "amount": _dollars(days.get(day, Decimal(0)))})
        day += timedelta(days=1)
    return out


def daily_chart(days: list[dict], *, width: int = 720, height: int = 200) -> dict:
    """Bars for an inline SVG: one per day, scaled to the highest day."""
    top = max((day["amount"] for day in days), default=Decimal(0)) or Decimal("0.01")
    slot = width / max(len(days), 1)
    bars = []
    for index, day in enumerate(days):
        bar_height = float(day["amount"] / top) * (height - 20)
        bars.append(
            {
                "x": round(index * slot + 1, 2),
                "y": round(height - bar_height, 2),
                "width": round(max(slot - 2, 1), 2),
                "height": round(bar_height, 2),
                "title": f"{day['day']:%b %-d}: ${day['amount']}",
            }
        )
    return {"width": width, "height": height, "bars": bars, "top": top}


def statement_list(*, tenant: Organization) -> list:
    """Stored statements (closed months), newest first, and this month's so far."""
    current = statement_compute(tenant=tenant, month=month_start(timezone.now()))
    stored = [stored_statement(row) for row in Statement.objects.for_tenant(tenant)]
    return [current, *stored]


def billing_overview(*, tenant: Organization) -> dict:
    now = timezone.now()
    account = account_for(tenant=tenant)
    start, end = month_bounds(month_start(now))
    spend = month_spend(tenant=tenant, now=now)
    days = daily_spend(tenant=tenant, start=start, end=end)
    return {
        "account": account,
        "stripe_configured": stripe_api.configured(),
        "spend": spend,
        "spent": _dollars(spend.cost_micros),
        "charged": _dollars(spend.charged_micros),
        "credits_left": max(Decimal(0), spend.credits_left).quantize(CENT),
        "limit": effective_limit(account),
        "limit_percent": (
            int(min(spend.limit_share, Decimal(1)) * 100) if spend.limit_share is not None else None
        ),
        "by_model": spend_by(tenant=tenant, start=start, end=end, field="model"),
        "by_key": spend_by(tenant=tenant, start=start, end=end, field="key_public_id"),
        "chart": daily_chart(days),
        "statements": statement_list(tenant=tenant),
        "invoices": list(Invoice.objects.for_tenant(tenant)[:24]),
        "grants": list(CreditGrant.objects.for_tenant(tenant)[:24]),
        "billing_hold": tenant.billing_hold,
        "grace_days": settings.BILLING_GRACE_DAYS,
    }
