"""Usage events: one per request, written when it settles.

With Redis an event is one XADD to settings.METERING_STREAM (no database write on the
request path); in the embedded default it is a UsageEvent row. Either way its id is
unique (the request id, or "train_<job id>"), so the ledger counts it once however
often it is delivered.

An admitted request is also recorded as in flight (a Redis hash, or an
InflightRequest row), written by the same atomic step that reserves its limits, until
it settles. A stream's record is refreshed with the usage delivered so far every
METERING_PROGRESS_MS (`inflight_progress`); `inflight_sweep` turns the records of
requests whose gateway died into events with the usage last recorded, and settles
their reservations to it.
"""

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from tokenmill.metering import hooks, limits, redis_client
from tokenmill.metering.limits_redis import INFLIGHT_HASH, INFLIGHT_STARTED
from tokenmill.metering.models import InflightRequest

__all__ = ["INFLIGHT_HASH", "INFLIGHT_STARTED", "Event", "event_emit", "inflight_sweep"]


@dataclass(frozen=True)
class Event:
    event_id: str
    tenant_id: int
    key_public_id: str
    model: str
    fine_tuned_model: str
    kind: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    status: str
    at: str  # ISO 8601, aware UTC

    @classmethod
    def from_dict(cls, found: dict) -> "Event":
        return cls(**{name: found[name] for name in cls.__dataclass_fields__})

    def encoded(self) -> bytes:
        return orjson.dumps(self)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def event_emit(event: Event) -> None:
    """Record one event (and drop its in-flight record, if any), in one round trip."""
    limits.settle(None, used={}, settlement=settlement_of(event))


def settlement_of(event: Event) -> limits.Settlement:
    return limits.Settlement(event.event_id, event)


def inflight_of(event: Event, reservation: limits.Reservation | None = None) -> dict:
    """The in-flight record: the event to bill if nothing settles the request, and the
    counters its reservation holds (for the sweeper to settle)."""
    return {**vars(event), "reserved": reservation.to_list() if reservation else []}


async def inflight_progress(event: Event, reservation: limits.Reservation | None) -> None:
    """A stream is still going: what it has delivered so far replaces its in-flight record."""
    record = inflight_of(event, reservation)
    if redis_client.enabled():
        client, gate = redis_client.async_client()
        async with gate:
            await client.hset(INFLIGHT_HASH, event.event_id, orjson.dumps(record))
        return
    await sync_to_async(_inflight_progress_db)(event.event_id, record)


def _inflight_progress_db(request_id: str, record: dict) -> None:
    InflightRequest.objects.filter(request_id=request_id).update(payload=record)


def inflight_sweep(*, older_than: timedelta | None = None) -> int:
    """Requests in flight longer than any request may take: their gateway died. Each
    becomes its event ("lost", with the usage last recorded) and its reservation is
    settled to that usage."""
    age = older_than if older_than is not None else _max_request_age()
    cutoff = datetime.now(UTC) - age
    swept = 0
    if redis_client.enabled():
        client = redis_client.client()
        for request_id in client.zrangebyscore(INFLIGHT_STARTED, "-inf", cutoff.timestamp()):
            raw = client.hget(INFLIGHT_HASH, request_id)
            if raw is None:  # settled meanwhile
                client.zrem(INFLIGHT_STARTED, request_id)
                continue
            _settle_lost(orjson.loads(raw))
            swept += 1
        return swept
    for row in InflightRequest.objects.filter(started_at__lt=cutoff):
        _settle_lost(row.payload)
        swept += 1
    return swept


def _settle_lost(record: dict) -> None:
    event = Event(**{**asdict(Event.from_dict(record)), "status": "lost"})
    reservation = limits.Reservation.from_list(record.get("reserved") or [])
    used = hooks.used(
        tenant_id=event.tenant_id,
        model=event.fine_tuned_model or event.model,
        prompt_tokens=event.prompt_tokens,
        completion_tokens=event.completion_tokens,
        kind=event.kind,
    )
    limits.settle(reservation, used=used, settlement=settlement_of(event))


def _max_request_age() -> timedelta:
    return timedelta(seconds=settings.GATEWAY_TOTAL_TIMEOUT + 60)
