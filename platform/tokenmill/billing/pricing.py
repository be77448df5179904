"""Prices per model and organization, and what usage costs.

A price is US dollars per million tokens, so `price * tokens` is micro-dollars,
exactly. Request costs for admission are whole micro-dollars rounded up (a
reservation never falls short); invoice lines are rounded once, to the cent
(statements.py).
"""

import math
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from tokenmill.billing.models import TokenType
from tokenmill.catalog.models import BaseModel, PriceOverride

#: How long a process trusts the prices it read (an operator's change applies within it).
PRICE_CACHE_SECONDS = 30


@dataclass(frozen=True)
class Prices:
    input: Decimal
    output: Decimal
    training: Decimal

    def per_million(self, token_type: str) -> Decimal:
        return getattr(self, str(token_type))


NO_PRICES = Prices(Decimal("0"), Decimal("0"), Decimal("0"))

_cache: dict[tuple, tuple[float, Prices]] = {}
_lock = threading.Lock()


def forget() -> None:
    """Drop the process's cached prices (after an operator changes one)."""
    with _lock:
        _cache.clear()


def fresh(*, tenant_id: int | None, model: str, base_model: str) -> bool:
    found = _cache.get((tenant_id, model, base_model))
    return found is not None and found[0] > time.monotonic()


def _of(row) -> Prices:
    return Prices(
        input=row.input_price_per_million,
        output=row.output_price_per_million,
        training=row.training_price_per_million,
    )


def _load(tenant_id: int | None, model: str, base_model: str) -> Prices:
    names = [model] if model == base_model else [model, base_model]
    overrides = {
        (row.model, row.organization_id): row
        for row in PriceOverride.objects.filter(model__in=names, organization_id=tenant_id)
    }
    overrides.update(
        {
            (row.model, None): row
            for row in PriceOverride.objects.filter(model__in=names, organization__isnull=True)
        }
    )
    # The organization's own price first, then everyone's; the model, then its base model.
    for name in names:
        for owner in (tenant_id, None):
            if (name, owner) in overrides:
                return _of(overrides[(name, owner)])
        if name == base_model:
            catalog = BaseModel.objects.filter(model_id=base_model).first()
            if catalog is not None:
                return _of(catalog)
    return NO_PRICES


def cached_prices(*, tenant_id: int | None, model: str, base_model: str) -> Prices | None:
    """What this process last read for these prices, however old; None if never read.
    (The gateway's async path reads no database: it warms the cache first.)"""
    found = _cache.get((tenant_id, model, base_model))
    return found[1] if found is not None else None


def prices_for(*, tenant_id: int | None, model: str, base_model: str) -> Prices:
    """The prices `tenant_id` pays for `model` (served by `base_model`), cached per process."""
    key = (tenant_id, model, base_model)
    now = time.monotonic()
    found = _cache.get(key)
    if found is not None and found[0] > now:
        return found[1]
    prices = _load(tenant_id, model, base_model)
    with _lock:
        if len(_cache) > 50_000:
            _cache.clear()
        _cache[key] = (now + PRICE_CACHE_SECONDS, prices)
    return prices


def token_counts(*, kind: str, prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The tokens of each billed type in a usage (training usage counts its tokens as training)."""
    if kind == "training":
        return {TokenType.TRAINING: prompt_tokens}
    return {TokenType.INPUT: prompt_tokens, TokenType.OUTPUT: completion_tokens}


def batch_price_factor() -> Decimal:
    """What a batch line pays of the live price: 0.5 with the default 50 % discount."""
    return (Decimal(100) - Decimal(settings.BILLING_BATCH_DISCOUNT_PERCENT)) / Decimal(100)


def unit_price(prices: Prices, token_type: str, *, kind: str) -> Decimal:
    """Dollars per million tokens of `token_type` for usage of `kind`."""
    price = prices.per_million(token_type)
    return price * batch_price_factor() if kind == "batch" else price


def cost_micros_exact(
    prices: Prices, *, kind: str, prompt_tokens: int, completion_tokens: int
) -> Decimal:
    """Exact micro-dollars; usage of kind `batch` (Batch API lines) at the batch discount,
    so admission reserves, settles and statements bill the same discounted price."""
    counts = token_counts(
        kind=kind, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )
    return sum(
        (
            unit_price(prices, token_type, kind=kind) * tokens
            for token_type, tokens in counts.items()
        ),
        Decimal("0"),
    )


def request_cost_micros(
    *,
    tenant_id: int,
    model: str,
    base_model: str,
    prompt_tokens: int,
    completion_tokens: int,
    kind: str,
) -> int:
    """What a request (or the worst case of one) costs, in whole micro-dollars, rounded up.

    `model` is what the client called (a base model or an `ft:` model), `base_model` the
    model serving it, `kind` one of chat, completion, embedding, training, batch. Prices are
    cached per process for PRICE_CACHE_SECONDS: no database read on most calls.
    """
    prices = prices_for(tenant_id=tenant_id, model=model, base_model=base_model)
    return micros_of(
        prices, kind=kind, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )


def micros_of(prices: Prices, *, kind: str, prompt_tokens: int, completion_tokens: int) -> int:
    """Whole micro-dollars, rounded up."""
    exact = cost_micros_exact(
        prices, kind=kind, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
    )
    return math.ceil(exact)
