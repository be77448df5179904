"""Small display filters for the dashboard's templates."""

from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def usd(value: Decimal | None) -> str:
    """A price in dollars: at least two decimals, more only when the price has them."""
    if value is None:
        return "—"
    amount = Decimal(value).normalize()
    places = max(2, -amount.as_tuple().exponent) if amount else 2
    return f"${amount:,.{places}f}"


@register.filter
def compact(value: int | None) -> str:
    """700000 -> 700K, 7000000000 -> 7B: parameter counts at a glance."""
    if not value:
        return "—"
    for size, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if value >= size:
            shown = f"{value / size:.1f}".removesuffix(".0")
            return f"{shown}{suffix}"
    return str(value)


@register.filter
def ago(value: datetime | None) -> str:
    """How long ago, as people say it: "just now" under a minute, else "3 minutes ago"."""
    if value is None:
        return "—"
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value)} ago"


@register.filter
def scope_label(value: str) -> str:
    """The short name of an API key scope: fine_tuning -> fine-tuning."""
    return value.replace("_", "-")


@register.filter
def thousands(value: int | float | None) -> str:
    """12345 -> 12,345; None -> —."""
    if value is None or value == "":
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


@register.filter
def duration(seconds: float | None) -> str:
    """Seconds as people say them: 45 s, 3 min 20 s, 2 h 5 min."""
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


@register.filter
def cents(value: Decimal | None) -> str:
    """An estimated charge: rounded up to the cent, and "< $0.01" below one."""
    if value is None:
        return "—"
    if 0 < value < Decimal("0.01"):
        return "< $0.01"
    return f"${Decimal(value).quantize(Decimal('0.01'), rounding=ROUND_CEILING):,}"


@register.filter
def without_line_prefix(issue: dict) -> str:
    """A validation error's message without its "line 7: " (the table has a line column)."""
    message = issue.get("message", "")
    return message.removeprefix(f"line {issue.get('line')}: ")


@register.filter
def stripe_amount(value: int | None) -> str:
    """1234 (Stripe's integer cents) -> $12.34, without float."""
    if value is None:
        return "—"
    return f"${Decimal(int(value)) / 100:,.2f}"
