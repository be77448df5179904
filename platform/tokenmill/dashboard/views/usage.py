"""Usage: the organization's tokens and requests over a date range, and its rate limits.

Every figure comes from the selectors /api/v1/usage answers with, for the same UTC
days, so the page and the API always agree; the limits and what is left of them this
minute are read from the counters admission reserves from (metering.windows).
"""

from collections import defaultdict
from datetime import date

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import render
from django.views import View

from tenants import selectors as tenant_selectors
from tenants.models import Organization
from tokenmill.dashboard.mixins import TenantMixin
from tokenmill.dashboard.usage_charts import NARROW, WIDE, daily_chart
from tokenmill.metering import gate, selectors, windows
from tokenmill.metering.models import LedgerEntry
from tokenmill.metering.ranges import DayRange, UsageRangeForm, presets, today

COUNTS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens")

_FIRST_CALL = """curl {base_url}/chat/completions \\
  -H "Authorization: Bearer $TOKENMILL_API_KEY" \\
  -H "Content-Type: application/json" \\
  -d '{{"model": "tiny-chat", "messages": [{{"role": "user", "content": "Hello!"}}]}}'"""


def _zero() -> dict[str, int]:
    return dict.fromkeys(COUNTS, 0)


def _by_group(rows: list[dict], name: str) -> list[tuple[str, dict[str, int]]]:
    """The selector's rows (per day and `name`) added up per `name`, most tokens first."""
    sums: dict[str, dict[str, int]] = defaultdict(_zero)
    for row in rows:
        for count in COUNTS:
            sums[row[name]][count] += row[count]
    return sorted(sums.items(), key=lambda item: (-item[1]["total_tokens"], item[0]))


def usage_report(*, tenant: Organization, span: DayRange) -> dict:
    """Totals, days (every day of the range, zero when unused), models and keys."""

    def summary(group_by: list[str]) -> dict:
        return selectors.usage_summary(
            tenant=tenant,
            start=span.start_time,
            end=span.end_time,
            group_by=group_by,
            bucket="day",
        )

    daily = summary([])
    by_start = {row["start_time"]: row for row in daily["data"]}
    days = []
    for day in span.days:
        start = int(DayRange(day, day).start_time.timestamp())
        days.append((day, {count: by_start.get(start, _zero())[count] for count in COUNTS}))
    return {
        "totals": daily["totals"],
        "days": days,
        "models": _by_group(summary(["model"])["data"], "model"),
        "keys": _by_group(summary(["key"])["data"], "key"),
    }


def _charts(days: list[tuple[date, dict[str, int]]]) -> dict:
    """Each daily chart twice: wide, and narrow for a phone's width (CSS shows one)."""
    dates = [day for day, _ in days]
    tokens = [
        ("prompt", "Prompt tokens", [row["prompt_tokens"] for _, row in days]),
        ("completion", "Completion tokens", [row["completion_tokens"] for _, row in days]),
    ]
    requests = [("requests", "Requests", [row["requests"] for _, row in days])]
    charts = {}
    for suffix, size in (("", WIDE), ("_narrow", NARROW)):
        charts["tokens_chart" + suffix] = daily_chart(
            dates, tokens, title="Tokens by day", y_title="Tokens", unit="tokens", size=size
        )
        charts["requests_chart" + suffix] = daily_chart(
            dates, requests, title="Requests by day", y_title="Requests", unit="requests", size=size
        )
    return charts


def _model_bars(models: list[tuple[str, dict]]) -> list[dict]:
    """Each model's tokens as shares of the busiest model's, for the bars of the chart."""
    widest = max((row["total_tokens"] for _, row in models), default=0) or 1
    return [
        {
            "model": model,
            "counts": row,
            "prompt_share": round(100 * row["prompt_tokens"] / widest, 2),
            "completion_share": round(100 * row["completion_tokens"] / widest, 2),
        }
        for model, row in models
    ]


def _key_rows(tenant: Organization, keys: list[tuple[str, dict]]) -> list[dict]:
    known = {
        key.public_id: key
        for key in tenant_selectors.api_key_list(tenant=tenant, include_revoked=True).filter(
            public_id__in=[public_id for public_id, _ in keys]
        )
    }
    return [{"key": known.get(public_id), "public_id": public_id, **row} for public_id, row in keys]


def rate_limits(tenant: Organization) -> list[dict]:
    """The organization's limits and each key's own, with what is left this minute."""
    scopes = [
        (
            "organization",
            None,
            gate.caller_limits(
                tenant_id=tenant.pk,
                key_id=None,
                key_requests=None,
                key_tokens=None,
                org_requests=tenant.effective_requests_per_minute,
                org_tokens=tenant.effective_tokens_per_minute,
            ),
        )
    ]
    for key in tenant_selectors.api_key_list(tenant=tenant).order_by("name", "pk"):
        if key.status != "active":
            continue
        found = gate.caller_limits(
            tenant_id=tenant.pk,
            key_id=key.pk,
            key_requests=key.requests_per_minute,
            key_tokens=key.tokens_per_minute,
            org_requests=0,
            org_tokens=0,
        )
        if found:
            scopes.append(("key", key, found))
    limits = [found[0] for _, _, found in scopes if found]
    usage = iter(windows.current_usage(limits))
    return [
        {"kind": kind, "key": key, "usage": next(usage) if found else None}
        for kind, key, found in scopes
    ]


class UsageView(TenantMixin, View):
    def tenant_queryset(self, tenant: Organization) -> QuerySet:
        return LedgerEntry.objects.for_tenant(tenant)

    def get(self, request, *args, **kwargs) -> HttpResponse:
        form = UsageRangeForm(request.GET)
        context = {
            "presets": [
                (label, span, f"?start={span.start:%Y-%m-%d}&end={span.end:%Y-%m-%d}")
                for label, span in presets(today())
            ],
            "limits": rate_limits(self.tenant),
            "has_usage": selectors.usage_exists(tenant=self.tenant),
            "first_call": _FIRST_CALL.format(base_url=f"{settings.PUBLIC_URL}/v1"),
        }
        if not form.is_valid():
            context["form"] = form
            return render(request, "dashboard/usage.html", context, status=400)
        span = form.range
        report = usage_report(tenant=self.tenant, span=span)
        context.update(
            form=UsageRangeForm({"start": f"{span.start:%Y-%m-%d}", "end": f"{span.end:%Y-%m-%d}"}),
            span=span,
            report=report,
            key_rows=_key_rows(self.tenant, report["keys"]),
            model_bars=_model_bars(report["models"]),
            **_charts(report["days"]),
        )
        return render(request, "dashboard/usage.html", context)
