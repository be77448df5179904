"""Billing's admission hook: the month's spend is a budget scope reserved with the rate limits.

The scope `spend:org:<id>` counts this calendar month's inference cost in micro-dollars
(reserved at the worst case of a request, settled to its real cost, atomically with the
rate limits: tokenmill.metering.limits). Its cap is the month's whole budget: the
credit the month may use plus what the plan's limit allows beyond it, less what was
spent this month outside admission (training). No cap (Enterprise without a limit)
means no scope; a billing hold is a cap of 0.

The cap is read from the database at most once per GATEWAY_LOCAL_CACHE_SECONDS per
organization and process (a per-process memo), so there is no query per request.
"""

import math
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.utils import timezone

from tenants.models import Organization
from tokenmill.billing import pricing
from tokenmill.billing.accounts import account_for, effective_limit, month_cost_micros
from tokenmill.billing.statements import credit_available, month_bounds, month_start
from tokenmill.gateway.memo import LocalMemo
from tokenmill.metering import hooks, limits

DIMENSION = "microdollars"

_caps = LocalMemo()


def base_model_of(model: str) -> str:
    """`ft:<base>:<org>:<suffix>:<id>` is served by <base>; a base model by itself."""
    if model.startswith("ft:"):
        parts = model.split(":")
        if len(parts) > 1 and parts[1]:
            return parts[1]
    return model


def month_cap_micros(*, tenant_id: int) -> int | None:
    """The month's inference budget in micro-dollars (None: unlimited)."""
    tenant = Organization.objects.get(pk=tenant_id)
    if tenant.billing_hold:
        return 0
    account = account_for(tenant=tenant)
    limit = effective_limit(account)
    if limit is None:
        return None
    month = month_start(timezone.now())
    start, end = month_bounds(month)
    budget = max(Decimal(0), credit_available(tenant=tenant, month=month)) + limit
    training = month_cost_micros(tenant=tenant, start=start, end=end, kinds=["training"])
    return max(0, math.floor(budget * 1_000_000 - training))


class SpendHook:
    async def scopes(self, *, tenant_id: int, key_id: int | None, model: str) -> list:
        base = base_model_of(model)
        if not pricing.fresh(tenant_id=tenant_id, model=model, base_model=base):
            # cost() runs on the event loop and reads only this process's cache.
            await sync_to_async(_warm_prices)(tenant_id, model, base)
        cap = await _caps.get(tenant_id, lambda: month_cap_micros(tenant_id=tenant_id))
        if cap is None:
            return []
        window, reset_at, ttl = limits.month_window()
        return [
            limits.Scope(
                name=f"spend:org:{tenant_id}",
                window=window,
                reset_at=reset_at,
                ttl=ttl,
                counters=(limits.Counter(DIMENSION, cap),),
                quota=True,
            )
        ]

    def cost(
        self,
        *,
        tenant_id: int,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        kind: str = "chat",
    ) -> dict[str, int]:
        # The organization's own prices (Enterprise) where it has them, as on its statement.
        base = base_model_of(model)
        prices = pricing.cached_prices(tenant_id=tenant_id, model=model, base_model=base)
        if prices is None:  # the sweeper (sync code): nothing warmed this process's cache
            prices = pricing.prices_for(tenant_id=tenant_id, model=model, base_model=base)
        return {
            DIMENSION: pricing.micros_of(
                prices,
                kind=kind,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
        }


def _warm_prices(tenant_id: int, model: str, base: str) -> None:
    try:
        pricing.prices_for(tenant_id=tenant_id, model=model, base_model=base)
    finally:
        connections.close_all()  # outside Django's request cycle (as the gateway's memo)


def install() -> None:
    if settings.BILLING_ENFORCE_AT_ADMISSION:
        hooks.register(SpendHook())


def forget_local() -> None:
    _caps.clear()
