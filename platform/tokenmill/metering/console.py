"""Usage by organization, for the operator console: exact ledger sums over a date range,
for every organization (system code: it reads across tenants)."""

from datetime import datetime

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from tenants.models import Organization
from tokenmill.metering.models import Kind, LedgerEntry

# The columns an operator may sort by: the query parameter's name -> the annotation.
SORTS = {
    "organization": "name",
    "requests": "requests",
    "prompt": "prompt_tokens",
    "completion": "completion_tokens",
    "total": "total_tokens",
    **{f"kind_{kind.value}": f"kind_{kind.value}_tokens" for kind in Kind},
}
DEFAULT_SORT = "-total"


def organization_usage(*, start: datetime, end: datetime, sort: str = DEFAULT_SORT) -> QuerySet:
    """Every organization with its requests, prompt, completion and total tokens in
    [start, end), and its total tokens per kind (`kind_<kind>_tokens`), sorted by `sort`
    (a key of SORTS, "-" first for descending; ties by name)."""
    in_range = Q(ledgerentry__hour__gte=start, ledgerentry__hour__lt=end)
    tokens = F("ledgerentry__prompt_tokens") + F("ledgerentry__completion_tokens")

    def total(expression, condition=in_range):
        return Coalesce(Sum(expression, filter=condition), 0)

    per_kind = {
        f"kind_{kind.value}_tokens": total(tokens, in_range & Q(ledgerentry__kind=kind.value))
        for kind in Kind
    }
    descending = sort.startswith("-")
    field = SORTS.get(sort.removeprefix("-"), SORTS[DEFAULT_SORT.removeprefix("-")])
    return Organization.objects.annotate(
        requests=total("ledgerentry__requests"),
        prompt_tokens=total("ledgerentry__prompt_tokens"),
        completion_tokens=total("ledgerentry__completion_tokens"),
        total_tokens=total(tokens),
        **per_kind,
    ).order_by(f"-{field}" if descending else field, "name", "pk")


def usage_totals(*, start: datetime, end: datetime) -> dict[str, int]:
    """The sums over every organization, for the foot of the table."""
    tokens = F("prompt_tokens") + F("completion_tokens")
    sums = {
        "requests": Sum("requests"),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        "total_tokens": Sum(tokens),
        **{f"kind_{kind.value}_tokens": Sum(tokens, filter=Q(kind=kind.value)) for kind in Kind},
    }
    # Named apart from the columns: an aggregate's name would shadow the field it sums.
    found = LedgerEntry.unscoped.filter(hour__gte=start, hour__lt=end).aggregate(
        **{f"sum_{name}": expression for name, expression in sums.items()}
    )
    return {name: found[f"sum_{name}"] or 0 for name in sums}
