"""What each limit scope has used of the current minute, and what is left of it.

A read of the very counters admission reserves from (limits.py): in Redis the keys
`rl:<scope>:<window>:r` and `rl:<scope>:<window>:t`, in the embedded default the
RateWindow rows. Reading takes nothing: a page that shows the figures does not count
against them.
"""

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tokenmill.metering import redis_client
from tokenmill.metering.limits import WINDOW_SECONDS, Limit
from tokenmill.metering.models import RateWindow


@dataclass(frozen=True)
class WindowUsage:
    limit: Limit
    requests_used: int
    tokens_used: int
    resets_in: float  # seconds until the next minute starts

    @property
    def reset_seconds(self) -> int:
        return max(math.ceil(self.resets_in), 1)

    @property
    def requests_left(self) -> int | None:
        return _left(self.limit.of("requests"), self.requests_used)

    @property
    def tokens_left(self) -> int | None:
        return _left(self.limit.of("tokens"), self.tokens_used)


def _left(cap: int | None, used: int) -> int | None:
    return None if cap is None else max(cap - used, 0)


def window_key(scope: str, window: int, dimension: str) -> str:
    """The Redis key the reservation script counts `dimension` of `scope` in."""
    return f"rl:{scope}:{window}:{dimension[0]}"


def current_usage(limits: Sequence[Limit], *, now: float | None = None) -> list[WindowUsage]:
    """Each limit's use of the current minute, in the order given (one round trip)."""
    now = time.time() if now is None else now
    window = int(now // WINDOW_SECONDS)
    resets_in = (window + 1) * WINDOW_SECONDS - now
    scopes = [limit.scope for limit in limits]
    if not scopes:
        return []
    if redis_client.enabled():
        keys = [window_key(scope, window, d) for scope in scopes for d in ("requests", "tokens")]
        values = [int(value or 0) for value in redis_client.client().mget(keys)]
        used = {scope: (values[2 * i], values[2 * i + 1]) for i, scope in enumerate(scopes)}
    else:
        rows = RateWindow.objects.filter(scope__in=scopes, window=window)
        used = {row.scope: (row.requests, row.tokens) for row in rows}
    return [
        WindowUsage(limit, *used.get(limit.scope, (0, 0)), resets_in=resets_in) for limit in limits
    ]
