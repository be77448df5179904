"""Reservations in the database, for the embedded default (no Redis).

One transaction: a conditional UPDATE per counter (`value <= cap - cost`) whose row
count says whether it fitted, and the in-flight row; a refusal rolls all of it back.
On SQLite the write lock is taken when the transaction begins, on PostgreSQL each
UPDATE locks its row, so concurrent reservations never take more than a cap.
"""

from datetime import UTC, datetime, timedelta

import orjson
from django.db import transaction
from django.db.models import F

from tokenmill.metering.models import InflightRequest, ReservationCounter, UsageEvent


class _Refused(Exception):
    def __init__(self, index: int):
        self.index = index


def reserve(plan, inflight) -> tuple[int, list[int]]:
    now = datetime.now(UTC)
    keys = [key for _, _, key in plan]
    if plan:
        ReservationCounter.objects.bulk_create(
            [
                ReservationCounter(key=key, value=0, expires_at=now + timedelta(seconds=scope.ttl))
                for scope, _, key in plan
            ],
            ignore_conflicts=True,
        )
    refused = 0
    try:
        with transaction.atomic():
            for index, (scope, counter, key) in enumerate(plan, start=1):
                room = ReservationCounter.objects.filter(key=key)
                if counter.cap is not None:
                    room = room.filter(value__lte=counter.cap - counter.cost)
                expires = now + timedelta(seconds=scope.ttl)
                if not room.update(value=F("value") + counter.cost, expires_at=expires):
                    raise _Refused(index)
            if inflight is not None:
                InflightRequest.objects.create(
                    request_id=inflight.request_id,
                    payload=orjson.loads(inflight.payload),
                    started_at=datetime.fromtimestamp(inflight.started, UTC),
                )
    except _Refused as refusal:
        refused = refusal.index
    values = dict(ReservationCounter.objects.filter(key__in=keys).values_list("key", "value"))
    return refused, [values.get(key, 0) for key in keys]


def settle(deltas, settlement) -> None:
    with transaction.atomic():
        for key, delta in deltas:
            ReservationCounter.objects.filter(key=key).update(value=F("value") + delta)
        if settlement.event_payload is not None:
            UsageEvent.objects.bulk_create(  # delivered before: recorded once
                [UsageEvent(event_id=settlement.request_id, payload=settlement.event_payload)],
                ignore_conflicts=True,
            )
        InflightRequest.objects.filter(request_id=settlement.request_id).delete()


def forget_expired() -> int:
    deleted, _ = ReservationCounter.objects.filter(expires_at__lt=datetime.now(UTC)).delete()
    return deleted


def value(key: str) -> int:
    return ReservationCounter.objects.filter(key=key).values_list("value", flat=True).first() or 0
