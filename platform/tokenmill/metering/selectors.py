"""Reads of the usage ledger: exact sums, grouped as asked."""

from datetime import datetime

from django.db.models import Sum
from django.db.models.functions import TruncDay, TruncHour

from tokenmill.metering.models import LedgerEntry

GROUPS = ("model", "key", "kind")
BUCKETS = {"day": TruncDay, "hour": TruncHour}
_FIELD = {"model": "model", "key": "key_public_id", "kind": "kind"}


def usage_summary(
    *, tenant, start: datetime, end: datetime, group_by: list[str], bucket: str
) -> dict:
    """Ledger sums per bucket (and per the groups asked for) in [start, end), with totals."""
    rows = LedgerEntry.objects.for_tenant(tenant).filter(hour__gte=start, hour__lt=end)
    fields = [_FIELD[name] for name in group_by]
    sums = {
        "requests": Sum("requests"),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
    }
    grouped = (
        rows.annotate(bucket=BUCKETS[bucket]("hour"))
        .values("bucket", *fields)
        .annotate(**sums)
        .order_by("bucket", *fields)
    )
    data = []
    for row in grouped:
        item = {"start_time": int(row["bucket"].timestamp())}
        for name in group_by:
            item[name] = row[_FIELD[name]]
        item.update(_counts(row))
        data.append(item)
    return {"data": data, "totals": _counts(rows.aggregate(**sums))}


def _counts(row: dict) -> dict:
    prompt = row["prompt_tokens"] or 0
    completion = row["completion_tokens"] or 0
    return {
        "requests": row["requests"] or 0,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def usage_exists(*, tenant) -> bool:
    """Whether the organization has any usage in the ledger, at any time."""
    return LedgerEntry.objects.for_tenant(tenant).exists()
