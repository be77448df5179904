"""Reservations: rate limits and budgets checked and taken in one atomic step.

A reservation names scopes ("key:12", "org:3", or a budget such as
"spend:org:3:202612"). Each scope has its own window (a minute for rate limits, a
calendar month for a budget), its own TTL, and counters: one per dimension
("requests", "tokens", "microdollars", ...), each with its cap (None: counted, never
refused) and what this request costs in it. A reservation takes every counter's cost
from every scope at once, or, when any counter would pass its cap, takes nothing:

- with Redis, one Lua script (tokenmill.metering.limits_redis), which also writes the
  request's in-flight record in the same round trip;
- in the embedded default, one transaction of conditional UPDATEs
  (`value + cost <= cap`) on ReservationCounter rows (tokenmill.metering.limits_db),
  SQLite's write lock taken when the transaction begins, the in-flight row inside it.

`settle` gives back what a request reserved and did not use, per dimension (or takes
the difference when it used more), writes its usage event and drops its in-flight
record, again in one step. A counter whose window has already expired is not
recreated. Scopes marked `quota` are budgets: their refusal is OpenAI's
`insufficient_quota`, not a rate limit, and they add no x-ratelimit-* headers.
"""

import math
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from asgiref.sync import sync_to_async

from tokenmill.metering import limits_db, limits_redis, redis_client

WINDOW_SECONDS = 60
RATE_DIMENSIONS = ("requests", "tokens")


@dataclass(frozen=True)
class Counter:
    dimension: str  # "requests", "tokens", or a budget's unit ("microdollars")
    cap: int | None  # None: counted, never refused
    cost: int = 0  # what this request reserves


@dataclass(frozen=True)
class Scope:
    name: str  # "key:12", "org:3", "spend:org:3:202612"
    window: str  # the window's id ("29392811" for a minute, "202612" for a month)
    reset_at: float  # unix time the window ends
    ttl: int  # seconds its counters outlive the reservation
    counters: tuple[Counter, ...]
    quota: bool = False  # a budget: refused as insufficient_quota, no rate-limit headers

    def counter_key(self, counter: Counter) -> str:
        return f"rl:{self.name}:{self.window}:{counter.dimension}"

    def cap(self, dimension: str) -> int | None:
        for counter in self.counters:
            if counter.dimension == dimension:
                return counter.cap
        return None

    def with_costs(self, costs: dict[str, int]) -> "Scope":
        """The same scope with each counter's cost taken from `costs` by dimension."""
        counters = tuple(replace(c, cost=costs.get(c.dimension, c.cost)) for c in self.counters)
        return replace(self, counters=counters)


@dataclass(frozen=True)
class Held:
    """One counter a reservation took from: what `settle` adjusts."""

    key: str
    dimension: str
    cost: int


@dataclass(frozen=True)
class Reservation:
    held: tuple[Held, ...]

    def to_list(self) -> list[list]:
        return [[held.key, held.dimension, held.cost] for held in self.held]

    @classmethod
    def from_list(cls, found: list) -> "Reservation":
        return cls(tuple(Held(str(key), str(dim), int(cost)) for key, dim, cost in found))


@dataclass(frozen=True)
class Verdict:
    reservation: Reservation | None  # None: refused
    refused: str | None  # the refused counter's dimension
    refused_scope: Scope | None
    headers: dict[str, str]
    retry_after: int  # seconds until the refused scope's window ends


@dataclass(frozen=True)
class Inflight:
    """The in-flight record a reservation writes with it (see tokenmill.metering.events)."""

    request_id: str
    payload: bytes  # JSON: the event to bill if nothing settles the request
    started: float  # unix time


@dataclass(frozen=True)
class Settlement:
    """What `settle` writes beside the counters: the request's event, its in-flight record gone."""

    request_id: str
    event: object | None  # a dataclass (written as JSON); None: drop the in-flight record only


def minute_window(now: float | None = None) -> tuple[str, float]:
    now = time.time() if now is None else now
    minute = int(now // WINDOW_SECONDS)
    return str(minute), (minute + 1) * WINDOW_SECONDS


def month_window(now: float | None = None) -> tuple[str, float, int]:
    """The calendar month (UTC) as a budget's window: its id ("202612"), the unix time it
    ends, and a TTL that keeps its counters a day past its end."""
    at = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    following = datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)
    ends = following.timestamp()
    return f"{at.year:04d}{at.month:02d}", ends, int(ends - at.timestamp()) + 86_400


def rate_scope(name: str, *, requests: int | None, tokens: int | None, cost_tokens: int = 0):
    """A per-minute rate-limit scope: `requests` and `tokens` per minute (None or 0: none)."""
    window, reset_at = minute_window()
    return Scope(
        name=name,
        window=window,
        reset_at=reset_at,
        ttl=WINDOW_SECONDS * 2,
        counters=(
            Counter("requests", requests or None, 1),
            Counter("tokens", tokens or None, cost_tokens),
        ),
    )


def format_reset(seconds: float) -> str:
    """OpenAI's style: "20ms", "1s", "6m0s"."""
    if seconds < 1:
        return f"{max(int(seconds * 1000), 1)}ms"
    whole = math.ceil(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def _plan(scopes) -> list[tuple[Scope, Counter, str]]:
    return [
        (scope, counter, scope.counter_key(counter))
        for scope in scopes
        for counter in scope.counters
    ]


def _verdict(plan, refused_index: int, used: list[int]) -> Verdict:
    now = time.time()
    headers = _headers(plan, used, now)
    if refused_index:
        scope, counter, _ = plan[refused_index - 1]
        retry = max(math.ceil(scope.reset_at - now), 1)
        return Verdict(None, counter.dimension, scope, headers, retry)
    held = tuple(Held(key, counter.dimension, counter.cost) for _, counter, key in plan)
    return Verdict(Reservation(held), None, None, headers, 0)


def planned(scopes) -> Reservation:
    """What reserving `scopes` holds once admitted (for the in-flight record)."""
    return Reservation(tuple(Held(key, c.dimension, c.cost) for _, c, key in _plan(scopes)))


def reserve(scopes, *, inflight: Inflight | None = None) -> Verdict:
    """Take every counter's cost from every scope, or refuse and take nothing."""
    plan = _plan(scopes)
    if redis_client.enabled():
        refused, used = limits_redis.reserve(plan, inflight)
    else:
        refused, used = limits_db.reserve(plan, inflight)
    return _verdict(plan, refused, used)


async def areserve(scopes, *, inflight: Inflight | None = None) -> Verdict:
    """`reserve` for the event loop: one awaited round trip to Redis, or a thread for the
    database of the embedded default."""
    if not redis_client.enabled():
        return await sync_to_async(reserve)(scopes, inflight=inflight)
    plan = _plan(scopes)
    refused, used = await limits_redis.areserve(plan, inflight)
    return _verdict(plan, refused, used)


def _deltas(reservation: Reservation | None, used: dict[str, int]) -> list[tuple[str, int]]:
    if reservation is None:
        return []
    found = []
    for held in reservation.held:
        if held.dimension in used and used[held.dimension] != held.cost:
            found.append((held.key, used[held.dimension] - held.cost))
    return found


def settle(
    reservation: Reservation | None, *, used: dict[str, int], settlement: Settlement
) -> None:
    """Adjust each held counter to what the request really `used` (by dimension; those
    not named keep their cost), write the settlement's event and drop its in-flight record."""
    deltas = _deltas(reservation, used)
    if redis_client.enabled():
        limits_redis.settle(deltas, settlement)
    else:
        limits_db.settle(deltas, settlement)


async def asettle(
    reservation: Reservation | None, *, used: dict[str, int], settlement: Settlement
) -> None:
    if not redis_client.enabled():
        await sync_to_async(settle)(reservation, used=used, settlement=settlement)
        return
    await limits_redis.asettle(_deltas(reservation, used), settlement)


def _headers(plan, used: list[int], now: float) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, for the tightest rate scope of each dimension."""
    headers = {}
    for dimension in RATE_DIMENSIONS:
        tightest = None
        for (scope, counter, _), value in zip(plan, used, strict=True):
            if scope.quota or counter.dimension != dimension or counter.cap is None:
                continue
            remaining = max(counter.cap - value, 0)
            if tightest is None or remaining < tightest[1]:
                tightest = (counter.cap, remaining, scope.reset_at)
        if tightest is not None:
            headers[f"x-ratelimit-limit-{dimension}"] = str(tightest[0])
            headers[f"x-ratelimit-remaining-{dimension}"] = str(tightest[1])
            headers[f"x-ratelimit-reset-{dimension}"] = format_reset(tightest[2] - now)
    return headers


def limits_for(
    *,
    key_id: int | None,
    key_requests: int | None,
    key_tokens: int | None,
    tenant_id: int,
    org_requests: int | None,
    org_tokens: int | None,
    tokens: int = 0,
) -> list[Scope]:
    """The caller's rate scopes this minute, each to take one request and `tokens`."""
    found = []
    if key_id is not None and (key_requests or key_tokens):
        found.append(
            rate_scope(
                f"key:{key_id}", requests=key_requests, tokens=key_tokens, cost_tokens=tokens
            )
        )
    if org_requests or org_tokens:
        found.append(
            rate_scope(
                f"org:{tenant_id}", requests=org_requests, tokens=org_tokens, cost_tokens=tokens
            )
        )
    return found


def used_now(scope: Scope, dimension: str) -> int:
    """What `scope` has taken in `dimension` this window (0 when nothing yet)."""
    key = scope.counter_key(Counter(dimension, None))
    if redis_client.enabled():
        return int(redis_client.client().get(key) or 0)
    return limits_db.value(key)


def forget_expired() -> int:
    """Expired counters of the embedded default (Redis expires its own keys)."""
    return limits_db.forget_expired()
