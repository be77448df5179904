"""Usage events -> the usage ledger, each event counted exactly once.

Idempotent on the event id: a batch's ids go into ConsumedEvent (unique) in the same
transaction as the ledger rows they add to, so a replayed, duplicated or late event
adds nothing. With Redis, events are read through a consumer group and acknowledged
only after that transaction commits; a consumer that died holding a batch is taken
over (XAUTOCLAIM) once the batch has been idle METERING_CLAIM_IDLE_SECONDS, so a
killed worker loses nothing and counts nothing twice.
"""

import os
import socket
from dataclasses import dataclass
from datetime import datetime

import orjson
import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from tokenmill.metering import redis_client
from tokenmill.metering.events import Event
from tokenmill.metering.models import ConsumedEvent, LedgerEntry, UsageEvent

GROUP = "ledger"


@dataclass
class Aggregated:
    events: int = 0  # read
    counted: int = 0  # new to the ledger


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def ledger_add(events: list[Event]) -> int:
    """Add events to the ledger in one transaction; returns how many were new."""
    if not events:
        return 0
    unique = {event.event_id: event for event in events}
    with transaction.atomic():
        seen = set(
            ConsumedEvent.objects.filter(event_id__in=list(unique)).values_list(
                "event_id", flat=True
            )
        )
        fresh = [event for event_id, event in unique.items() if event_id not in seen]
        _consumed_insert([event.event_id for event in fresh])
        totals: dict[tuple, dict] = {}
        hours: dict[tuple[str, str], datetime] = {}  # parsed once per hour and offset
        for event in fresh:
            hour_of = (event.at[:13], event.at[-6:])
            hour = hours.get(hour_of)
            if hour is None:
                hour = datetime.fromisoformat(event.at).replace(minute=0, second=0, microsecond=0)
                hours[hour_of] = hour
            model = event.fine_tuned_model or event.model
            group = (event.tenant_id, event.key_public_id, model, event.kind, hour)
            row = totals.setdefault(
                group, {"base": event.model, "requests": 0, "prompt": 0, "completion": 0}
            )
            row["requests"] += 1
            row["prompt"] += event.prompt_tokens
            row["completion"] += event.completion_tokens
        for (tenant_id, key_public_id, model, kind, hour), row in totals.items():
            entry, _ = LedgerEntry.unscoped.get_or_create(
                tenant_id=tenant_id,
                key_public_id=key_public_id,
                model=model,
                kind=kind,
                hour=hour,
                defaults={"base_model": row["base"]},
            )
            LedgerEntry.unscoped.filter(pk=entry.pk).update(
                requests=F("requests") + row["requests"],
                prompt_tokens=F("prompt_tokens") + row["prompt"],
                completion_tokens=F("completion_tokens") + row["completion"],
            )
    return len(fresh)


def _consumed_insert(event_ids: list[str]) -> None:
    """ConsumedEvent rows, one executemany: the ORM's bulk_create builds a model instance
    per row, which costs more than the rest of a batch."""
    if not event_ids:
        return
    at = connection.ops.adapt_datetimefield_value(timezone.now())
    table = connection.ops.quote_name(ConsumedEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (event_id, consumed_at) VALUES (%s, %s)",  # noqa: S608
            [(event_id, at) for event_id in event_ids],
        )


def aggregate(*, consumer: str | None = None, batch: int | None = None) -> Aggregated:
    """Drain what is waiting: the stream with Redis, else the UsageEvent table."""
    batch = batch or settings.METERING_BATCH
    if redis_client.enabled():
        return _aggregate_stream(consumer or consumer_name(), batch)
    return _aggregate_table(batch)


def _aggregate_table(batch: int) -> Aggregated:
    done = Aggregated()
    while True:
        rows = list(UsageEvent.objects.filter(aggregated=False).order_by("pk")[:batch])
        if not rows:
            return done
        with transaction.atomic():
            done.counted += ledger_add([Event.from_dict(row.payload) for row in rows])
            UsageEvent.objects.filter(pk__in=[row.pk for row in rows]).update(aggregated=True)
        done.events += len(rows)


def ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(settings.METERING_STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


def read_batch(client: redis.Redis, consumer: str, batch: int) -> list[tuple[bytes, Event]]:
    """A dead consumer's idle entries first (XAUTOCLAIM), then new ones (XREADGROUP)."""
    stream = settings.METERING_STREAM
    _, claimed, *_ = client.xautoclaim(
        stream, GROUP, consumer, settings.METERING_CLAIM_IDLE_SECONDS * 1000, "0-0", count=batch
    )
    entries = [entry for entry in claimed if entry[1]]
    if not entries:
        found = client.xreadgroup(GROUP, consumer, {stream: ">"}, count=batch)
        entries = found[0][1] if found else []
    return [
        (entry_id, Event.from_dict(orjson.loads(fields[b"event"]))) for entry_id, fields in entries
    ]


def _aggregate_stream(consumer: str, batch: int) -> Aggregated:
    client = redis_client.client()
    ensure_group(client)
    done = Aggregated()
    while True:
        entries = read_batch(client, consumer, batch)
        if not entries:
            return done
        done.counted += ledger_add([event for _, event in entries])
        # Only after the ledger has committed: a crash before this loses nothing.
        client.xack(settings.METERING_STREAM, GROUP, *[entry_id for entry_id, _ in entries])
        client.xdel(settings.METERING_STREAM, *[entry_id for entry_id, _ in entries])
        done.events += len(entries)
