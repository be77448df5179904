"""GET /api/v1/usage: the ledger's exact sums over a date range."""

from datetime import UTC, date, datetime, timedelta

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from tenants.models import ApiKeyScope
from tokenmill.api.errors import ApiError
from tokenmill.api.views import TenantAPIView
from tokenmill.metering import selectors
from tokenmill.metering.models import LedgerEntry
from tokenmill.metering.ranges import MAX_DAYS


def _day(request, name: str, default: date) -> date:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(
            f"{name} must be a date such as 2026-12-01, got {raw!r}.",
            code="invalid_value",
            param=name,
        ) from None


_counts = {
    "requests": serializers.IntegerField(),
    "prompt_tokens": serializers.IntegerField(),
    "completion_tokens": serializers.IntegerField(),
    "total_tokens": serializers.IntegerField(),
}


class UsageView(TenantAPIView):
    required_scope = ApiKeyScope.ORGANIZATION
    object_noun = "usage"

    def tenant_queryset(self, tenant):
        return LedgerEntry.objects.for_tenant(tenant)

    @extend_schema(
        operation_id="usage_retrieve",
        tags=["usage"],
        parameters=[
            OpenApiParameter(
                "start",
                OpenApiTypes.DATE,
                description="First day (UTC), included; default 30 days ago.",
            ),
            OpenApiParameter(
                "end", OpenApiTypes.DATE, description="Last day (UTC), included; default today."
            ),
            OpenApiParameter(
                "bucket", str, enum=list(selectors.BUCKETS), description="day (default) or hour."
            ),
            OpenApiParameter(
                "group_by",
                str,
                description="Comma-separated: any of model, key, kind.",
            ),
        ],
        responses=inline_serializer(
            "Usage",
            {
                "object": serializers.CharField(),
                "bucket": serializers.CharField(),
                "start": serializers.DateField(),
                "end": serializers.DateField(),
                "data": serializers.ListField(child=serializers.DictField()),
                "totals": inline_serializer("UsageTotals", _counts),
            },
        ),
    )
    def get(self, request):
        today = datetime.now(UTC).date()
        end = _day(request, "end", today)
        start = _day(request, "start", end - timedelta(days=29))
        if start > end:
            raise ApiError("start must not be after end.", code="invalid_value", param="start")
        if (end - start).days >= MAX_DAYS:
            raise ApiError(
                f"The range may span at most {MAX_DAYS} days.", code="invalid_value", param="start"
            )
        bucket = request.query_params.get("bucket", "day")
        if bucket not in selectors.BUCKETS:
            raise ApiError(
                f"bucket must be one of {', '.join(selectors.BUCKETS)}, got {bucket!r}.",
                code="invalid_value",
                param="bucket",
            )
        raw_groups = request.query_params.get("group_by", "")
        group_by = [name.strip() for name in raw_groups.split(",") if name.strip()]
        unknown = [name for name in group_by if name not in selectors.GROUPS]
        if unknown:
            raise ApiError(
                f"group_by takes {', '.join(selectors.GROUPS)}; {unknown[0]!r} is not one of them.",
                code="invalid_value",
                param="group_by",
            )
        summary = selectors.usage_summary(
            tenant=self.tenant,
            start=datetime.combine(start, datetime.min.time(), UTC),
            end=datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC),
            group_by=list(dict.fromkeys(group_by)),
            bucket=bucket,
        )
        return Response(
            {"object": "usage", "bucket": bucket, "start": start, "end": end, **summary}
        )
