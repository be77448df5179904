"""One usage event per request, exact to what the client was told, counted once."""

import time
from datetime import timedelta

import orjson
import pytest
from django.conf import settings

from tests.gateway.helpers import chat, sse_events, stream_lines, wait_for
from tests.metering.helpers import ledger_totals
from tests.processes import start_worker, stop_worker, worker_database_url
from tokenmill.metering import events, ledger, redis_client
from tokenmill.metering.models import ConsumedEvent, InflightRequest, LedgerEntry, UsageEvent


def _event(event_id: str, tenant, *, prompt: int = 10, completion: int = 5, **extra):
    return events.Event(
        **{
            "event_id": event_id,
            "tenant_id": tenant.pk,
            "key_public_id": "key-x",
            "model": "tiny-chat",
            "fine_tuned_model": "",
            "kind": "chat",
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "latency_ms": 3,
            "status": "completed",
            "at": events.now_iso(),
            **extra,
        }
    )


def test_plain_and_streamed_requests_are_billed_what_the_client_was_told(
    store, backend, call, acme, alice_key
):
    told = {"prompt_tokens": 0, "completion_tokens": 0}
    for _ in range(3):
        usage = call(alice_key, "/v1/chat/completions", chat(max_tokens=9)).json()["usage"]
        told["prompt_tokens"] += usage["prompt_tokens"]
        told["completion_tokens"] += usage["completion_tokens"]
    for _ in range(2):
        response = call(
            alice_key,
            "/v1/chat/completions",
            chat(stream=True, stream_options={"include_usage": True}),
        )
        usage = sse_events(response.text)[-2]["usage"]
        told["prompt_tokens"] += usage["prompt_tokens"]
        told["completion_tokens"] += usage["completion_tokens"]
    wait_for(lambda: ledger_totals(acme)["requests"] == 5, what="five events in the ledger")
    assert ledger_totals(acme) == {"requests": 5, **told}


def test_a_cut_stream_is_billed_for_what_was_delivered(store, backend, gateway, acme, alice_key):
    backend.state.chunk_delay = 0.05
    got = stream_lines(
        gateway.url + "/v1/chat/completions",
        alice_key,
        chat(stream=True, stream_options={"include_usage": True, "continuous_usage_stats": True}),
        read_events=4,
    )
    seen = got[-1]["usage"]
    wait_for(lambda: ledger_totals(acme)["requests"] == 1, what="the cut stream's event")
    billed = ledger_totals(acme)
    assert billed["prompt_tokens"] == seen["prompt_tokens"]
    # What was delivered: the four chunks read, or a chunk or two already on the wire;
    # never the 16 the model would have written.
    assert 4 <= billed["completion_tokens"] <= 6


def test_with_redis_the_request_path_writes_no_database_row(redis_store, backend, call, alice_key):
    call(alice_key, "/v1/chat/completions", chat())
    client = redis_client.client()
    wait_for(lambda: client.xlen(settings.METERING_STREAM) == 1, what="the event in the stream")
    assert UsageEvent.objects.count() == 0
    assert InflightRequest.objects.count() == 0
    assert client.hlen(events.INFLIGHT_HASH) == 0  # settled: no longer in flight


def test_a_replayed_batch_changes_nothing(store, acme):
    batch = [_event(f"req_{n}", acme) for n in range(5)]
    assert ledger.ledger_add(batch) == 5
    assert ledger.ledger_add(batch + batch[:2]) == 0
    for event in batch:  # delivered again, late, through the store
        events.event_emit(event)
    ledger.aggregate()
    (entry,) = LedgerEntry.objects.for_tenant(acme)
    assert (entry.requests, entry.prompt_tokens, entry.completion_tokens) == (5, 50, 25)


def test_a_ledger_worker_killed_mid_batch_loses_nothing(redis_store, settings, acme):
    for n in range(4):
        events.event_emit(_event(f"req_{n}", acme, prompt=7, completion=3))
    client = redis_client.client()
    ledger.ensure_group(client)
    read = ledger.read_batch(client, "doomed", 3)  # read, then "killed" before the ack
    assert len(read) == 3
    assert LedgerEntry.objects.for_tenant(acme).count() == 0
    settings.METERING_CLAIM_IDLE_SECONDS = 0  # the dead consumer's batch is idle long enough
    done = ledger.aggregate(consumer="survivor")
    assert (done.events, done.counted) == (4, 4)
    (entry,) = LedgerEntry.objects.for_tenant(acme)
    assert (entry.requests, entry.prompt_tokens, entry.completion_tokens) == (4, 28, 12)
    assert client.xpending(settings.METERING_STREAM, ledger.GROUP)["pending"] == 0
    assert ledger.aggregate(consumer="survivor").counted == 0


def test_a_ledger_worker_that_crashes_after_its_commit_counts_nothing_twice(
    redis_store, settings, acme
):
    events.event_emit(_event("req_once", acme))
    client = redis_client.client()
    ledger.ensure_group(client)
    read = ledger.read_batch(client, "doomed", 10)
    ledger.ledger_add([event for _, event in read])  # committed, then killed before the ack
    settings.METERING_CLAIM_IDLE_SECONDS = 0
    assert ledger.aggregate(consumer="survivor").counted == 0
    assert LedgerEntry.objects.for_tenant(acme).get().requests == 1
    assert ConsumedEvent.objects.filter(event_id="req_once").count() == 1


def test_a_settled_request_is_not_swept(store, backend, call, acme, alice_key):
    call(alice_key, "/v1/chat/completions", chat())
    wait_for(lambda: ledger_totals(acme)["requests"] == 1, what="the event")
    assert events.inflight_sweep(older_than=timedelta(0)) == 0
    assert ledger_totals(acme)["requests"] == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_aggregates_the_events(acme, settings):
    for n in range(3):
        events.event_emit(_event(f"req_w{n}", acme, prompt=2, completion=1))
    worker = start_worker("default", env={"DATABASE_URL": worker_database_url()})
    try:
        from workers.celery import app

        app.send_task("metering.aggregate")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert worker.poll() is None, "the worker died"
            entry = LedgerEntry.objects.for_tenant(acme).first()
            if entry is not None and entry.requests == 3:
                break
            time.sleep(0.2)
        entry = LedgerEntry.objects.for_tenant(acme).get()
        assert (entry.requests, entry.prompt_tokens, entry.completion_tokens) == (3, 6, 3)
    finally:
        stop_worker(worker)


def test_the_event_carries_the_request_and_the_caller(store, backend, call, acme, alice_key):
    response = call(alice_key, "/v1/chat/completions", chat())
    request_id = response.headers["x-request-id"]
    if store == "redis":
        client = redis_client.client()
        wait_for(lambda: client.xlen(settings.METERING_STREAM), what="the event")
        ((_, fields),) = client.xrange(settings.METERING_STREAM)
        found = orjson.loads(fields[b"event"])
    else:
        found = wait_for(
            lambda: UsageEvent.objects.filter(event_id=request_id).first(), what="the event"
        ).payload
    usage = response.json()["usage"]
    assert found["event_id"] == request_id
    assert found["tenant_id"] == acme.pk
    assert found["kind"] == "chat" and found["model"] == "tiny-chat"
    assert found["status"] == "completed"
    assert (found["prompt_tokens"], found["completion_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert found["latency_ms"] >= 0 and found["key_public_id"].startswith("key")
