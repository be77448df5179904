"""Usage events: one per request, written when it settles.

With Redis an event is one XADD to settings.METERING_STREAM (no database write on the
request path); in the embedded default it is a UsageEvent row. Either way its id is
unique (the request id, or "train_<job id>"), so the ledger counts it once however
often it is delivered.

An admitted request is also recorded as in flight (a Redis hash, or an
InflightRequest row) until it settles; `inflight_sweep` turns those whose gateway died
into events with the usage they last saw.
"""

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import orjson
from django.conf import settings

from tokenmill.metering import redis_client
from tokenmill.metering.models import InflightRequest, UsageEvent

INFLIGHT_HASH = "metering:inflight"
INFLIGHT_STARTED = "metering:inflight:started"


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
        return orjson.dumps(asdict(self))


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def event_emit(event: Event, *, pipe=None) -> None:
    """Record one event; with Redis also drops its in-flight record in the same round trip
    (`pipe`: a pipeline of the caller's that carries the commands, for it to run)."""
    if redis_client.enabled():
        own = pipe is None
        pipe = redis_client.client().pipeline(transaction=True) if own else pipe
        pipe.xadd(settings.METERING_STREAM, {"event": event.encoded()})
        pipe.hdel(INFLIGHT_HASH, event.event_id)
        pipe.zrem(INFLIGHT_STARTED, event.event_id)
        if own:
            pipe.execute()
        return
    UsageEvent.objects.bulk_create(  # delivered before: recorded once
        [UsageEvent(event_id=event.event_id, payload=asdict(event))], ignore_conflicts=True
    )
    InflightRequest.objects.filter(request_id=event.event_id).delete()


def inflight_start(event: Event) -> None:
    """The request was admitted: if nothing settles it, this becomes its event."""
    if redis_client.enabled():
        pipe = redis_client.client().pipeline(transaction=True)
        pipe.hset(INFLIGHT_HASH, event.event_id, event.encoded())
        pipe.zadd(INFLIGHT_STARTED, {event.event_id: datetime.now(UTC).timestamp()})
        pipe.execute()
        return
    InflightRequest.objects.create(
        request_id=event.event_id, payload=asdict(event), started_at=datetime.now(UTC)
    )


def inflight_sweep(*, older_than: timedelta | None = None) -> int:
    """Turn requests in flight longer than any request may take into events ("lost")."""
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
            event_emit(_lost(Event.from_dict(orjson.loads(raw))))
            swept += 1
        return swept
    for row in InflightRequest.objects.filter(started_at__lt=cutoff):
        event_emit(_lost(Event.from_dict(row.payload)))
        swept += 1
    return swept


def _lost(event: Event) -> Event:
    return Event(**{**asdict(event), "status": "lost"})


def _max_request_age() -> timedelta:
    return timedelta(seconds=settings.GATEWAY_TOTAL_TIMEOUT + 60)
