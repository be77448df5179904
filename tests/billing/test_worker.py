"""The periodic billing task, in a real Celery worker process on the default queue."""

import time
from datetime import UTC, datetime

import pytest

from tests.billing.helpers import ledger_row
from tests.billing.test_meter_sync import customer_of, expected_from_ledger
from tests.processes import start_worker, stop_worker, worker_database_url
from tokenmill.billing.models import Plan
from tokenmill.billing.services import plan_set
from workers.celery import app


def test_the_billing_sync_runs_on_the_default_queue_on_a_schedule(settings):
    assert app.amqp.router.route({}, "billing.sync")["queue"].name == "default"
    schedule = app.conf.beat_schedule["sync-billing"]
    assert schedule["task"] == "billing.sync"
    assert schedule["schedule"] == float(settings.BILLING_SYNC_SECONDS)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_the_ledger_to_stripe_through_injected_failures(fake_stripe, acme):
    plan_set(tenant=acme, plan=Plan.PAY_AS_YOU_GO)
    now = datetime.now(UTC)
    ledger_row(acme, hour=now, key="key_a", prompt=321, completion=45)
    ledger_row(acme, hour=now, kind="training", prompt=9_000)
    fake_stripe.fail = [500, 429]  # the customer's creation, twice: the next run succeeds
    worker = start_worker(
        "default",
        env={
            "DATABASE_URL": worker_database_url(),
            "STRIPE_SECRET_KEY": "sk_test_tokenmill",
            "STRIPE_API_BASE": fake_stripe.url,
        },
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(fake_stripe.meter_events) < 3:
            assert worker.poll() is None, "the worker died"
            app.send_task("billing.sync")
            time.sleep(1.5)
        assert fake_stripe.counted() == expected_from_ledger(acme, customer_of(acme))
        app.send_task("billing.sync")  # a replay sends nothing more
        time.sleep(2)
        assert len(fake_stripe.paths("/v1/billing/meter_events")) == 3
    finally:
        stop_worker(worker)
