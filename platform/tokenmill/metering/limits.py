"""Requests and tokens per minute, per API key and per organization.

A fixed window of one minute (unix time // 60) per limit scope. A reservation checks
and takes its cost from every scope at once, or from none: in Redis one Lua script
(so no burst can slip between the check and the take), in the embedded default one
transaction of conditional UPDATEs (`used + cost <= limit`, SQLite's write lock taken
when the transaction begins). A settled request gives back what it reserved and did not
use (`settle`). The cost has a requests and a tokens dimension; a budget is another
scope the same script can carry.
"""

import math
import time
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Q

from tokenmill.metering import redis_client
from tokenmill.metering.models import RateWindow

WINDOW_SECONDS = 60
DIMENSIONS = ("requests", "tokens")

# KEYS: per scope its requests key then its tokens key. ARGV: requests cost, tokens cost,
# ttl, then per scope its requests limit and tokens limit (-1: none).
# Returns {refused scope (0: none), refused dimension (1 requests, 2 tokens), used...}.
_RESERVE = """
local n = #KEYS / 2
local cost = {tonumber(ARGV[1]), tonumber(ARGV[2])}
local used = {}
local refused, dimension = 0, 0
for i = 1, n do
  for d = 1, 2 do
    local value = tonumber(redis.call('GET', KEYS[2 * i - 2 + d]) or '0')
    used[2 * i - 2 + d] = value
    local limit = tonumber(ARGV[3 + 2 * i - 2 + d])
    if refused == 0 and limit >= 0 and value + cost[d] > limit then
      refused, dimension = i, d
    end
  end
end
if refused == 0 then
  for i = 1, 2 * n do
    local d = (i - 1) % 2 + 1
    used[i] = redis.call('INCRBY', KEYS[i], cost[d])
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3]))
  end
end
local reply = {refused, dimension}
for i = 1, 2 * n do reply[2 + i] = used[i] end
return reply
"""


@dataclass(frozen=True)
class Limit:
    scope: str  # "key:<id>" or "org:<id>"
    requests: int | None  # per minute; None or 0: no limit
    tokens: int | None

    def of(self, dimension: str) -> int | None:
        value = self.requests if dimension == "requests" else self.tokens
        return value or None


@dataclass(frozen=True)
class Reservation:
    limits: tuple[Limit, ...]
    window: int
    requests: int
    tokens: int


@dataclass(frozen=True)
class Verdict:
    reservation: Reservation | None  # None: refused
    refused: str | None  # "requests" or "tokens"
    refused_limit: Limit | None
    headers: dict[str, str]
    retry_after: int  # seconds


def format_reset(seconds: float) -> str:
    """OpenAI's style: "20ms", "1s", "6m0s"."""
    if seconds < 1:
        return f"{max(int(seconds * 1000), 1)}ms"
    whole = math.ceil(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def reserve(limits: list[Limit], *, requests: int = 1, tokens: int = 0) -> Verdict:
    """Take `requests` and `tokens` from every scope's current minute, or refuse."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    limits = tuple(limits)
    if redis_client.enabled():
        refused_index, dimension, used = _reserve_redis(limits, window, requests, tokens)
    else:
        refused_index, dimension, used = _reserve_db(limits, window, requests, tokens)
    reset = (window + 1) * WINDOW_SECONDS - now
    headers = _headers(limits, used, reset)
    if refused_index:
        limit = limits[refused_index - 1]
        return Verdict(None, DIMENSIONS[dimension - 1], limit, headers, max(math.ceil(reset), 1))
    reservation = Reservation(limits, window, requests, tokens)
    return Verdict(reservation, None, None, headers, 0)


def settle(reservation: Reservation, *, tokens: int, pipe=None) -> None:
    """The request used `tokens`: give back (or take) the difference from what it reserved.

    With Redis, `pipe` (a pipeline) carries the commands instead, for the caller to run.
    """
    delta = tokens - reservation.tokens
    if delta == 0 or not reservation.limits:
        return
    if redis_client.enabled():
        own = pipe is None
        pipe = redis_client.client().pipeline(transaction=False) if own else pipe
        for limit in reservation.limits:
            pipe.incrby(_key(limit.scope, reservation.window, "tokens"), delta)
        if own:
            pipe.execute()
        return
    RateWindow.objects.filter(
        scope__in=[limit.scope for limit in reservation.limits], window=reservation.window
    ).update(tokens=F("tokens") + delta)


def _key(scope: str, window: int, dimension: str) -> str:
    return f"rl:{scope}:{window}:{dimension[0]}"


_script = None


def _reserve_redis(limits, window, requests, tokens) -> tuple[int, int, list[int]]:
    global _script
    client = redis_client.client()
    if _script is None or _script.registered_client is not client:
        _script = client.register_script(_RESERVE)
    keys, args = [], [requests, tokens, WINDOW_SECONDS * 2]
    for limit in limits:
        keys += [_key(limit.scope, window, "requests"), _key(limit.scope, window, "tokens")]
        args += [limit.of("requests") or -1, limit.of("tokens") or -1]
    reply = [int(value) for value in _script(keys=keys, args=args)]
    return reply[0], reply[1], reply[2:]


class _Refused(Exception):
    def __init__(self, index: int, dimension: int):
        self.index, self.dimension = index, dimension


def _reserve_db(limits, window, requests, tokens) -> tuple[int, int, list[int]]:
    scopes = [limit.scope for limit in limits]
    RateWindow.objects.bulk_create(
        [RateWindow(scope=scope, window=window) for scope in scopes], ignore_conflicts=True
    )
    refused = (0, 0)
    try:
        with transaction.atomic():
            for index, limit in enumerate(limits, start=1):
                room = Q()
                for dimension, cost in (("requests", requests), ("tokens", tokens)):
                    if limit.of(dimension) is not None:
                        room &= Q(**{f"{dimension}__lte": limit.of(dimension) - cost})
                taken = RateWindow.objects.filter(scope=limit.scope, window=window).filter(room)
                if not taken.update(requests=F("requests") + requests, tokens=F("tokens") + tokens):
                    raise _Refused(index, _which(limit, window, requests))
    except _Refused as refusal:
        refused = (refusal.index, refusal.dimension)
    rows = {row.scope: row for row in RateWindow.objects.filter(scope__in=scopes, window=window)}
    used = []
    for scope in scopes:
        row = rows.get(scope)
        used += [row.requests if row else 0, row.tokens if row else 0]
    return refused[0], refused[1], used


def _which(limit: Limit, window: int, requests: int) -> int:
    row = RateWindow.objects.filter(scope=limit.scope, window=window).first()
    if limit.of("requests") is not None and row.requests + requests > limit.of("requests"):
        return 1
    return 2


def _headers(limits: tuple[Limit, ...], used: list[int], reset: float) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, for the tightest scope of each dimension."""
    headers = {}
    for d, dimension in enumerate(DIMENSIONS):
        tightest = None
        for i, limit in enumerate(limits):
            cap = limit.of(dimension)
            if cap is None:
                continue
            remaining = max(cap - used[2 * i + d], 0)
            if tightest is None or remaining < tightest[1]:
                tightest = (cap, remaining)
        if tightest is not None:
            headers[f"x-ratelimit-limit-{dimension}"] = str(tightest[0])
            headers[f"x-ratelimit-remaining-{dimension}"] = str(tightest[1])
            headers[f"x-ratelimit-reset-{dimension}"] = format_reset(reset)
    return headers


def limits_for(
    *,
    key_id: int | None,
    key_requests: int | None,
    key_tokens: int | None,
    tenant_id: int,
    org_requests: int | None,
    org_tokens: int | None,
) -> list[Limit]:
    found = []
    if key_id is not None and (key_requests or key_tokens):
        found.append(Limit(f"key:{key_id}", key_requests, key_tokens))
    if org_requests or org_tokens:
        found.append(Limit(f"org:{tenant_id}", org_requests, org_tokens))
    return found


def forget_windows_before(window: int) -> int:
    """Old minutes of the embedded default (Redis expires its own keys)."""
    deleted, _ = RateWindow.objects.filter(window__lt=window).delete()
    return deleted
