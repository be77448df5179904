"""Monthly statements: the ledger priced line by line, credits applied, a total.

Each line (model, usage kind, token type) is priced exactly in Decimal and rounded once,
to the cent, ROUND_HALF_UP. Credits are applied in whole cents, never more than the
credit left (rounded down) nor than the subtotal. A closed month's statement is stored;
computing it again from the same ledger, grants and prices gives the same numbers.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import Min, Sum

from tenants.models import Organization
from tokenmill.billing.models import CreditGrant, Statement
from tokenmill.billing.pricing import prices_for, token_counts, unit_price
from tokenmill.metering.models import LedgerEntry

CENT = Decimal("0.01")
MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Line:
    model: str
    base_model: str
    kind: str  # chat, completion, embedding, training, batch
    token_type: str  # input, output, training
    tokens: int
    price_per_million: Decimal
    amount: Decimal  # rounded to the cent

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "base_model": self.base_model,
            "kind": self.kind,
            "token_type": self.token_type,
            "tokens": self.tokens,
            "price_per_million": str(self.price_per_million),
            "amount": str(self.amount),
        }


@dataclass(frozen=True)
class MonthStatement:
    month: date
    lines: list[Line]
    subtotal: Decimal
    credits_applied: Decimal
    total: Decimal
    stored: bool = False


def month_start(moment: datetime) -> date:
    return date(moment.year, moment.month, 1)


def next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end_month = next_month(month)
    return start, datetime(end_month.year, end_month.month, 1, tzinfo=UTC)


def usage_groups(
    *, tenant: Organization, start: datetime, end: datetime, kinds: list[str] | None = None
):
    """Exact token sums per (model, base model, kind) in [start, end)."""
    rows = LedgerEntry.objects.for_tenant(tenant).filter(hour__gte=start, hour__lt=end)
    if kinds is not None:
        rows = rows.filter(kind__in=kinds)
    return (
        rows.values("model", "base_model", "kind")
        .annotate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
        .order_by("model", "kind")
    )


def statement_lines(*, tenant: Organization, month: date) -> list[Line]:
    start, end = month_bounds(month)
    lines = []
    for group in usage_groups(tenant=tenant, start=start, end=end):
        prices = prices_for(
            tenant_id=tenant.pk, model=group["model"], base_model=group["base_model"]
        )
        counts = token_counts(
            kind=group["kind"],
            prompt_tokens=group["prompt"] or 0,
            completion_tokens=group["completion"] or 0,
        )
        for token_type, tokens in counts.items():
            if not tokens:
                continue
            price = unit_price(prices, token_type, kind=group["kind"])
            amount = (price * tokens / MILLION).quantize(CENT, rounding=ROUND_HALF_UP)
            lines.append(
                Line(
                    model=group["model"],
                    base_model=group["base_model"],
                    kind=group["kind"],
                    token_type=str(token_type),
                    tokens=tokens,
                    price_per_million=price,
                    amount=amount,
                )
            )
    return lines


def granted_before(*, tenant: Organization, moment: datetime) -> Decimal:
    total = (
        CreditGrant.objects.for_tenant(tenant)
        .filter(created_at__lt=moment)
        .aggregate(total=Sum("amount"))["total"]
    )
    return total or Decimal("0")


def first_month(tenant: Organization) -> date | None:
    first_use = LedgerEntry.objects.for_tenant(tenant).aggregate(first=Min("hour"))["first"]
    first_grant = CreditGrant.objects.for_tenant(tenant).aggregate(first=Min("created_at"))["first"]
    moments = [moment for moment in (first_use, first_grant) if moment is not None]
    return month_start(min(moments)) if moments else None


def credits_applied_before(*, tenant: Organization, month: date) -> Decimal:
    """Credits spent by the statements of every month before `month`."""
    applied = Decimal("0")
    current = first_month(tenant)
    stored = {
        row.month: row.credits_applied
        for row in Statement.objects.for_tenant(tenant).filter(month__lt=month)
    }
    while current is not None and current < month:
        if current in stored:
            applied += stored[current]
        else:
            applied += _compute(tenant, current, applied_before=applied).credits_applied
        current = next_month(current)
    return applied


def credit_available(*, tenant: Organization, month: date) -> Decimal:
    """Credit the month `month` may use: grants made before its end, less what earlier
    months used. (A top-up made during the month counts for the whole month.)"""
    _, end = month_bounds(month)
    return granted_before(tenant=tenant, moment=end) - credits_applied_before(
        tenant=tenant, month=month
    )


def _compute(tenant: Organization, month: date, *, applied_before: Decimal) -> MonthStatement:
    lines = statement_lines(tenant=tenant, month=month)
    subtotal = sum((line.amount for line in lines), Decimal("0.00"))
    _, end = month_bounds(month)
    available = granted_before(tenant=tenant, moment=end) - applied_before
    usable = max(Decimal("0"), available).quantize(CENT, rounding=ROUND_DOWN)
    applied = min(subtotal, usable)
    return MonthStatement(
        month=month,
        lines=lines,
        subtotal=subtotal,
        credits_applied=applied,
        total=subtotal - applied,
    )


def statement_compute(*, tenant: Organization, month: date) -> MonthStatement:
    """The statement of `month` from the ledger as it is now (stored or not)."""
    return _compute(
        tenant, month, applied_before=credits_applied_before(tenant=tenant, month=month)
    )


def statement_for(*, tenant: Organization, month: date) -> MonthStatement:
    """The stored statement of a closed month, else the one computed now."""
    row = Statement.objects.for_tenant(tenant).filter(month=month).first()
    if row is None:
        return statement_compute(tenant=tenant, month=month)
    return stored_statement(row)


def stored_statement(row: Statement) -> MonthStatement:
    lines = [
        Line(
            model=line["model"],
            base_model=line["base_model"],
            kind=line["kind"],
            token_type=line["token_type"],
            tokens=line["tokens"],
            price_per_million=Decimal(line["price_per_million"]),
            amount=Decimal(line["amount"]),
        )
        for line in row.lines
    ]
    return MonthStatement(
        month=row.month,
        lines=lines,
        subtotal=row.subtotal,
        credits_applied=row.credits_applied,
        total=row.total,
        stored=True,
    )


def statement_close(*, tenant: Organization, month: date, now: datetime) -> Statement:
    """Store the statement of a month that has ended (once; later calls return it)."""
    _, end = month_bounds(month)
    if now < end:
        raise ValueError(f"{month:%Y-%m} has not ended yet")
    existing = Statement.objects.for_tenant(tenant).filter(month=month).first()
    if existing is not None:
        return existing
    computed = statement_compute(tenant=tenant, month=month)
    try:
        with transaction.atomic():
            return Statement.objects.create(
                tenant=tenant,
                month=month,
                lines=[line.as_dict() for line in computed.lines],
                subtotal=computed.subtotal,
                credits_applied=computed.credits_applied,
                total=computed.total,
            )
    except IntegrityError:  # closed concurrently: the first one stands
        return Statement.objects.for_tenant(tenant).get(month=month)
