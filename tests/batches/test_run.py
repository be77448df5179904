"""The run: cancelling keeps finished lines, a run killed mid-batch resumes without losing
or repeating a line, retries, a revoked key, metering as kind batch at the batch price."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from tenants.models import ApiKey
from tenants.services import api_key_revoke
from tests.batches.conftest import chat_line
from tokenmill.batches import run, runner, services
from tokenmill.batches.models import Batch
from tokenmill.billing import pricing
from tokenmill.billing.statements import statement_lines
from tokenmill.metering.models import LedgerEntry
from tokenmill.metering.services import metering_run

pytestmark = pytest.mark.django_db(transaction=True)


def file_lines(api, key, file_id) -> list[dict]:
    response = api(key).get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200
    return [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]


@pytest.fixture
def held_runs(monkeypatch):
    """Validation sends no run: the test runs the batch itself (as the batch worker would)."""
    sent = []
    monkeypatch.setattr(run, "send", lambda name, pk: sent.append((name, pk)))
    return sent


def test_cancelling_keeps_the_finished_lines_and_reports_the_rest(
    backend, upload_batch_file, create_batch, api, alice_key, acme, settings, monkeypatch, held_runs
):
    settings.BATCH_CHUNK_LINES = 2
    settings.BATCH_CONCURRENCY = 1
    monkeypatch.setattr(run, "STOP_CHECK_SECONDS", 0)
    batch_id = create_batch(upload_batch_file([chat_line(f"r{i}") for i in range(6)])).json()["id"]
    batch = Batch.unscoped.get(public_id=batch_id)
    assert batch.status == "in_progress"
    send_line = runner.send_line
    sent = []

    async def send_then_cancel(batch_id, endpoint, line, caller, *, run):
        result = await send_line(batch_id, endpoint, line, caller, run=run)
        sent.append(line.custom_id)
        if len(sent) == 3:  # the user cancels while the third line is in flight
            await sync_to_async(services.batch_cancel)(tenant=acme, batch=batch)
        return result

    monkeypatch.setattr(runner, "send_line", send_then_cancel)

    assert run.batch_run(batch=Batch.unscoped.get(pk=batch.pk)) == "cancelled"

    body = api(alice_key).get(f"/v1/batches/{batch_id}").json()
    assert body["status"] == "cancelled"
    assert body["cancelling_at"] is not None and body["cancelled_at"] is not None
    assert body["request_counts"] == {"total": 6, "completed": 3, "failed": 3}
    output = file_lines(api, alice_key, body["output_file_id"])
    assert [line["custom_id"] for line in output] == ["r0", "r1", "r2"]
    errors = file_lines(api, alice_key, body["error_file_id"])
    assert [line["custom_id"] for line in errors] == ["r3", "r4", "r5"]
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
    assert all(line["response"] is None for line in errors)
    assert len(backend.state.requests) == 3


def test_a_run_killed_mid_batch_resumes_without_losing_or_repeating_lines(
    backend, upload_batch_file, create_batch, api, alice_key, settings, monkeypatch, held_runs
):
    settings.BATCH_CHUNK_LINES = 2
    batch_id = create_batch(upload_batch_file([chat_line(f"r{i}") for i in range(5)])).json()["id"]
    batch = Batch.unscoped.get(public_id=batch_id)
    run_lines = runner.run_lines
    chunks = []

    async def dies_on_the_second_chunk(**kwargs):
        chunks.append(kwargs["lines"][0].custom_id)
        if len(chunks) == 2:
            raise SystemExit("worker killed")
        return await run_lines(**kwargs)

    monkeypatch.setattr(runner, "run_lines", dies_on_the_second_chunk)
    with pytest.raises(SystemExit):
        run.batch_run(batch=batch)
    assert Batch.unscoped.get(pk=batch.pk).request_counts_completed == 2  # progress shows
    # A second delivery while the first's lease is fresh leaves the batch alone...
    assert run.batch_run(batch=Batch.unscoped.get(pk=batch.pk)) == "held by another run"
    # ...and takes it over once the dead run's heartbeat is stale (the sweeper sends it).
    Batch.unscoped.filter(pk=batch.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.BATCH_STALL_SECONDS + 1)
    )
    assert run.batches_sweep() == 1
    monkeypatch.setattr(runner, "run_lines", run_lines)
    assert run.batch_run(batch=Batch.unscoped.get(pk=batch.pk)) == "completed"

    body = api(alice_key).get(f"/v1/batches/{batch_id}").json()
    assert body["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    output = file_lines(api, alice_key, body["output_file_id"])
    assert [line["custom_id"] for line in output] == [f"r{i}" for i in range(5)]
    first_chunk = [r["body"]["messages"][0]["content"] for r in backend.state.requests]
    assert len(first_chunk) == 5  # the first chunk's two lines were not sent again


def test_overloaded_lines_are_retried_then_reported(
    backend, upload_batch_file, create_batch, api, alice_key, settings
):
    settings.BATCH_RETRY_SECONDS = Decimal("0")
    settings.BATCH_LINE_RETRIES = 2
    backend.state.error_status = 503
    body = create_batch(upload_batch_file([chat_line("only")])).json()
    assert body["status"] == "completed"
    assert body["request_counts"] == {"total": 1, "completed": 0, "failed": 1}
    assert len(backend.state.requests) == 3  # the first try and two retries
    (line,) = file_lines(api, alice_key, body["error_file_id"])
    assert line["custom_id"] == "only"
    assert line["response"]["status_code"] == 503
    assert line["response"]["body"]["error"]["code"] == "model_unavailable"
    assert line["response"]["request_id"].endswith("_2")


def test_a_key_revoked_before_the_run_fails_every_line_with_its_error(
    backend, upload_batch_file, create_batch, api, alice_key, acme, held_runs
):
    batch_id = create_batch(upload_batch_file([chat_line("a"), chat_line("b")])).json()["id"]
    batch = Batch.unscoped.get(public_id=batch_id)
    api_key_revoke(tenant=acme, actor=None, api_key=ApiKey.unscoped.get(pk=batch.created_by_key_id))

    assert run.batch_run(batch=batch) == "completed"

    body = api(make_fresh_key(acme)).get(f"/v1/batches/{batch_id}").json()
    assert body["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    errors = file_lines(api, make_fresh_key(acme), body["error_file_id"])
    assert {line["response"]["status_code"] for line in errors} == {401}
    assert errors[0]["response"]["body"]["error"]["message"] == "This API key has been revoked."
    assert backend.state.requests == []


def make_fresh_key(acme) -> str:
    from tests.factories import make_key

    return make_key(acme, None, name="operator")


def test_lines_are_metered_as_batch_at_the_discounted_price(
    backend, upload_batch_file, create_batch, acme, settings, api, alice_key
):
    body = create_batch(upload_batch_file([chat_line("a"), chat_line("b")])).json()
    assert body["status"] == "completed"
    metering_run()
    (entry,) = LedgerEntry.unscoped.filter(tenant=acme)
    assert entry.kind == "batch"
    assert entry.requests == 2
    assert entry.prompt_tokens == 2 * backend.state.prompt_tokens
    assert entry.key_public_id == Batch.unscoped.get(public_id=body["id"]).created_by_key_public_id
    month = timezone.now().date().replace(day=1)
    lines = {line.token_type: line for line in statement_lines(tenant=acme, month=month)}
    prices = pricing.prices_for(tenant_id=acme.pk, model="tiny-chat", base_model="tiny-chat")
    assert lines["input"].kind == "batch"
    assert lines["input"].price_per_million == prices.input / 2
    assert lines["output"].price_per_million == prices.output / 2
    settings.BILLING_BATCH_DISCOUNT_PERCENT = 0
    assert pricing.unit_price(prices, "input", kind="batch") == prices.input
    # The usage API shows batch usage as its own kind.
    usage = api(alice_key).get("/api/v1/usage?group_by=kind").json()
    assert {row["kind"] for row in usage["data"]} == {"batch"}
    assert usage["totals"]["requests"] == 2


def test_a_batch_past_its_window_expires_with_its_lines_in_the_error_file(
    backend, upload_batch_file, create_batch, api, alice_key, held_runs
):
    batch_id = create_batch(upload_batch_file([chat_line("a"), chat_line("b")])).json()["id"]
    batch = Batch.unscoped.get(public_id=batch_id)
    Batch.unscoped.filter(pk=batch.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert run.batches_sweep() == 1  # nothing ran it in its window: the sweeper sends it

    assert run.batch_run(batch=Batch.unscoped.get(pk=batch.pk)) == "expired"

    body = api(alice_key).get(f"/v1/batches/{batch_id}").json()
    assert body["status"] == "expired" and body["expired_at"] is not None
    assert body["output_file_id"] is None
    assert body["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    errors = file_lines(api, alice_key, body["error_file_id"])
    assert [(line["custom_id"], line["error"]["code"]) for line in errors] == [
        ("a", "batch_expired"),
        ("b", "batch_expired"),
    ]
    assert backend.state.requests == []


def test_a_batch_cancelled_while_validating_is_cancelled_at_once(
    upload_batch_file, api, alice_key, acme, monkeypatch
):
    from tokenmill.batches import services as batch_services

    monkeypatch.setattr(batch_services, "send", lambda name, pk: None)  # validation not yet run
    file_id = upload_batch_file([chat_line("a")])
    body = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    created = api(alice_key).post("/v1/batches", body, format="json").json()
    assert created["status"] == "validating"
    cancelled = api(alice_key).post(f"/v1/batches/{created['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert run.batch_validate(batch=Batch.unscoped.get(public_id=created["id"])) == "cancelled"


def test_a_batch_a_member_created_on_the_dashboard_runs_as_that_member(
    backend, upload_batch_file, acme, alice, bob, api, alice_key
):
    from tenants.models import Membership

    file_id = upload_batch_file([chat_line("a")])
    request = {"input_file_id": file_id, "endpoint": "/v1/chat/completions"}
    batch = services.batch_create(
        tenant=acme, data={**request, "completion_window": "24h"}, user_id=alice.pk
    )
    body = api(alice_key).get(f"/v1/batches/{batch.public_id}").json()
    assert body["request_counts"] == {"total": 1, "completed": 1, "failed": 0}

    Membership.unscoped.filter(tenant=acme, user=bob).update(role="viewer")
    viewer_batch = services.batch_create(
        tenant=acme, data={**request, "completion_window": "24h"}, user_id=bob.pk
    )
    body = api(alice_key).get(f"/v1/batches/{viewer_batch.public_id}").json()
    (line,) = file_lines(api, alice_key, body["error_file_id"])
    assert line["response"]["status_code"] == 403
    assert line["response"]["body"]["error"]["code"] == "insufficient_role"


def test_a_lost_validation_is_sent_again_by_the_sweeper(
    backend, upload_batch_file, api, alice_key, settings, monkeypatch
):
    monkeypatch.setattr(services, "send", lambda name, pk: None)  # the validation task is lost
    file_id = upload_batch_file([chat_line("a")])
    body = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    batch_id = api(alice_key).post("/v1/batches", body, format="json").json()["id"]
    assert run.batches_sweep() == 0  # not yet stale
    Batch.unscoped.filter(public_id=batch_id).update(
        created_at=timezone.now() - timedelta(seconds=settings.BATCH_STALL_SECONDS + 1)
    )
    monkeypatch.undo()
    assert run.batches_sweep() == 1
    assert api(alice_key).get(f"/v1/batches/{batch_id}").json()["status"] == "completed"
