"""What each rate-limit scope has used of the current minute, and what is left of it.

A read of the very counters admission reserves from (tokenmill.metering.limits): each
scope's `counter_key`, in Redis or in the embedded default's ReservationCounter rows.
Reading takes nothing: a page that shows the figures does not count against them.
"""

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tokenmill.metering import limits, redis_client
from tokenmill.metering.models import ReservationCounter


@dataclass(frozen=True)
class WindowUsage:
    limit: limits.Scope
    requests_used: int
    tokens_used: int
    resets_in: float  # seconds until the next minute starts

    @property
    def reset_seconds(self) -> int:
        return max(math.ceil(self.resets_in), 1)

    @property
    def requests_limit(self) -> int | None:
        return self.limit.cap("requests")

    @property
    def tokens_limit(self) -> int | None:
        return self.limit.cap("tokens")

    @property
    def requests_left(self) -> int | None:
        return _left(self.limit.cap("requests"), self.requests_used)

    @property
    def tokens_left(self) -> int | None:
        return _left(self.limit.cap("tokens"), self.tokens_used)


def _left(cap: int | None, used: int) -> int | None:
    return None if cap is None else max(cap - used, 0)


def _keys(scope: limits.Scope) -> list[str]:
    by_dimension = {counter.dimension: scope.counter_key(counter) for counter in scope.counters}
    return [by_dimension[dimension] for dimension in limits.RATE_DIMENSIONS]


def current_usage(scopes: Sequence[limits.Scope], *, now: float | None = None) -> list[WindowUsage]:
    """Each rate scope's use of the minute `now` falls in (one round trip), in order."""
    if not scopes:
        return []
    window, reset_at = limits.minute_window(now)
    current = [replace(scope, window=window, reset_at=reset_at) for scope in scopes]
    keys = [key for scope in current for key in _keys(scope)]
    if redis_client.enabled():
        values = [int(value or 0) for value in redis_client.client().mget(keys)]
    else:
        rows = dict(ReservationCounter.objects.filter(key__in=keys).values_list("key", "value"))
        values = [rows.get(key, 0) for key in keys]
    resets_in = reset_at - (time.time() if now is None else now)
    return [
        WindowUsage(scope, values[2 * i], values[2 * i + 1], resets_in=resets_in)
        for i, scope in enumerate(scopes)
    ]
