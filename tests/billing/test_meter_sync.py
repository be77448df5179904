"""Ledger rows -> Stripe meter events through the real stripe SDK, each counted once."""

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db.models import F

from tests.billing.helpers import ledger_row
from tokenmill.billing import services, statements, sync
from tokenmill.billing.models import Account, MeterEvent, Plan
from tokenmill.billing.services import plan_set
from tokenmill.metering.models import LedgerEntry

METERS = {
    "input": "tokenmill_input_tokens",
    "output": "tokenmill_output_tokens",
    "training": "tokenmill_training_tokens",
}


@pytest.fixture
def paying(acme):
    plan_set(tenant=acme, plan=Plan.PAY_AS_YOU_GO)
    return acme


def expected_from_ledger(tenant, customer: str) -> dict:
    totals: dict = defaultdict(int)
    for row in LedgerEntry.objects.for_tenant(tenant):
        if row.kind == "training":
            totals[(customer, METERS["training"], row.model)] += row.prompt_tokens
            continue
        totals[(customer, METERS["input"], row.model)] += row.prompt_tokens
        totals[(customer, METERS["output"], row.model)] += row.completion_tokens
    return {key: value for key, value in totals.items() if value}


def customer_of(tenant) -> str:
    return Account.objects.for_tenant(tenant).get().stripe_customer_id


def test_a_customer_and_a_metered_subscription_are_created_once(fake_stripe, paying, globex):
    sync.sync_run()
    sync.sync_run()
    assert len(fake_stripe.paths("/v1/customers")) == 1  # globex is on the Free plan
    subscription = fake_stripe.paths("/v1/subscriptions")
    assert len(subscription) == 1
    assert subscription[0].form["items[0][price]"] == "price_input"
    account = Account.objects.for_tenant(paying).get()
    assert account.stripe_customer_id.startswith("cus_")
    assert (account.stripe_subscription_id, account.subscription_status) == ("sub_2", "active")
    assert (
        fake_stripe.paths("/v1/customers")[0].idempotency_key == f"tm-customer-{paying.public_id}"
    )


def test_meter_events_survive_429_500_and_lost_replies_and_none_counts_twice(fake_stripe, paying):
    now = datetime.now(UTC)
    ledger_row(paying, hour=now - timedelta(hours=3), prompt=1200, completion=340, key="key_a")
    ledger_row(paying, hour=now - timedelta(hours=2), prompt=55, completion=7, key="key_b")
    ledger_row(paying, hour=now - timedelta(hours=1), kind="training", prompt=90_000)
    sync.customers_ensure(sync.SyncResult())
    fake_stripe.fail = [429, 500, "lost"]
    result = sync.sync_run()
    assert result.failed == 0, result.errors
    assert fake_stripe.counted() == expected_from_ledger(paying, customer_of(paying))
    assert fake_stripe.sleeps == [0.5, 1.0, 2.0]  # backoff, doubling
    sent = fake_stripe.paths("/v1/billing/meter_events")
    # Every attempt of an event carried its identifier (and the same idempotency key).
    assert all(request.idempotency_key == request.form["identifier"] for request in sent)
    assert len(sent) == 5 + 3  # five events, the first tried three more times
    assert len(fake_stripe.meter_events) == 5
    # A replay of the whole sync sends nothing new.
    sync.sync_run()
    assert len(fake_stripe.paths("/v1/billing/meter_events")) == len(sent)


def test_an_event_that_keeps_failing_waits_for_the_next_run_with_its_identifier(
    fake_stripe, paying
):
    ledger_row(paying, hour=datetime.now(UTC), prompt=1200)
    sync.customers_ensure(sync.SyncResult())
    fake_stripe.fail = ["lost", 500, 429, 502]  # counted by the first, then refused
    result = sync.sync_run()
    assert (result.sent, result.failed) == (0, 1)
    assert sync.sync_status()["failing"] == 1
    assert sync.sync_run().sent == 1
    identifiers = {
        request.form["identifier"] for request in fake_stripe.paths("/v1/billing/meter_events")
    }
    assert len(identifiers) == 1
    assert fake_stripe.counted() == expected_from_ledger(paying, customer_of(paying))


def test_late_and_out_of_order_usage_is_sent_as_new_versions(fake_stripe, paying):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    row = ledger_row(paying, hour=now - timedelta(hours=1), prompt=100, completion=10)
    sync.customers_ensure(sync.SyncResult())
    sync.sync_run()
    # Late usage for an hour already sent, and usage of an earlier hour arriving after it.
    LedgerEntry.unscoped.filter(pk=row.pk).update(prompt_tokens=F("prompt_tokens") + 25)
    ledger_row(paying, hour=now - timedelta(hours=5), prompt=7, completion=3)
    sync.sync_run()
    assert fake_stripe.counted() == expected_from_ledger(paying, customer_of(paying))
    identifiers = set(fake_stripe.meter_events)
    assert f"tm-le{row.pk}-input-v1" in identifiers
    assert f"tm-le{row.pk}-input-v2" in identifiers
    assert int(fake_stripe.meter_events[f"tm-le{row.pk}-input-v2"]["payload[value]"]) == 25
    assert int(fake_stripe.meter_events[f"tm-le{row.pk}-input-v1"]["timestamp"]) == int(
        (now - timedelta(hours=1)).timestamp()
    )


def test_a_correction_cancels_what_was_sent_and_sends_the_right_total(fake_stripe, paying):
    row = ledger_row(paying, hour=datetime.now(UTC), prompt=1000, completion=50)
    sync.customers_ensure(sync.SyncResult())
    sync.sync_run()
    LedgerEntry.unscoped.filter(pk=row.pk).update(prompt_tokens=400)
    result = sync.sync_run()
    assert result.cancelled == 1
    adjustments = fake_stripe.paths("/v1/billing/meter_event_adjustments")
    assert [request.form["cancel[identifier]"] for request in adjustments] == [
        f"tm-le{row.pk}-input-v1"
    ]
    assert adjustments[0].form["type"] == "cancel"
    assert fake_stripe.counted() == expected_from_ledger(paying, customer_of(paying))


def test_failures_are_kept_with_their_error_and_a_retry_sends_them(fake_stripe, paying):
    ledger_row(paying, hour=datetime.now(UTC), prompt=10, completion=1)
    sync.customers_ensure(sync.SyncResult())
    fake_stripe.always_fail = 500
    result = sync.sync_run()
    assert result.failed == 2 and result.sent == 0
    status = sync.sync_status()
    assert (status["waiting"], status["failing"]) == (2, 2)
    failing = MeterEvent.objects.for_tenant(paying).first()
    assert "Stripe answered 500" in failing.last_error
    fake_stripe.always_fail = None
    assert sync.failed_events_retry() == 2
    assert sync.meter_events_send().sent == 2
    assert sync.sync_status()["waiting"] == 0
    assert fake_stripe.counted() == expected_from_ledger(paying, customer_of(paying))


def test_a_refused_event_is_not_retried_in_the_run(fake_stripe, paying):
    ledger_row(paying, hour=datetime.now(UTC), prompt=10)
    sync.customers_ensure(sync.SyncResult())
    fake_stripe.fail = [400]
    result = sync.sync_run()
    assert result.failed == 1
    assert fake_stripe.sleeps == []


def test_a_month_of_usage_gives_meter_events_and_a_statement_that_agree_to_the_cent(
    fake_stripe, paying, settings
):
    november = datetime(2026, 11, 1, tzinfo=UTC)
    generator = random.Random(3)
    for hour in range(0, 30 * 24, 12):
        ledger_row(
            paying,
            hour=november + timedelta(hours=hour),
            key=f"key_{hour % 3}",
            prompt=generator.randint(1, 50_000),
            completion=generator.randint(0, 20_000),
        )
    ledger_row(paying, hour=november + timedelta(days=4), kind="training", prompt=777_777)
    sync.customers_ensure(sync.SyncResult())
    fake_stripe.fail = [429, 500, "lost"] * 5
    now = datetime(2026, 12, 2, 3, tzinfo=UTC)
    while sync.meter_events_plan(now=now) or sync.meter_events_send().sent:
        pass
    statement = services.statements_close(now=datetime(2026, 12, 3, tzinfo=UTC))
    assert statement == 1
    stored = statements.statement_for(tenant=paying, month=november.date())
    prices = {"input": Decimal("0.10"), "output": Decimal("0.20"), "training": Decimal("0.50")}
    from_stripe = Decimal("0")
    for (_, meter, _model), tokens in fake_stripe.counted().items():
        token_type = next(name for name, event in METERS.items() if event == meter)
        from_stripe += (prices[token_type] * tokens / 1_000_000).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
    assert from_stripe == stored.subtotal
    assert len(fake_stripe.meter_events) == len(set(fake_stripe.meter_events))


def test_without_stripe_keys_billing_is_ledger_only(paying, settings):
    settings.STRIPE_SECRET_KEY = ""
    ledger_row(paying, hour=datetime.now(UTC), prompt=10)
    assert sync.sync_run() == sync.SyncResult()
    assert not MeterEvent.objects.for_tenant(paying).exists()
