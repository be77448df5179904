"""Stripe webhooks: verified with tolerance, each event id acting exactly once."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from tests.billing.stripe_events import SECRET, event, post, signed
from tokenmill.billing.accounts import account_for, holds_apply, spend_allowance
from tokenmill.billing.models import Account, CreditGrant, Invoice, WebhookEvent


@pytest.fixture(autouse=True)
def _webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET


@pytest.fixture
def customer(acme) -> str:
    account_for(tenant=acme)
    Account.objects.for_tenant(acme).update(stripe_customer_id="cus_acme")
    return "cus_acme"


def top_up(session_id: str, cents: int = 2000) -> dict:
    return {
        "id": session_id,
        "object": "checkout.session",
        "customer": "cus_acme",
        "mode": "payment",
        "payment_status": "paid",
        "amount_total": cents,
        "metadata": {"purpose": "top_up"},
    }


def top_ups(tenant) -> list[Decimal]:
    return list(
        CreditGrant.objects.for_tenant(tenant)
        .filter(kind="top_up")
        .values_list("amount", flat=True)
    )


def test_a_signed_top_up_grants_its_credit(client, acme, customer):
    response = post(client, event("evt_1", "checkout.session.completed", top_up("cs_1")))
    assert response.status_code == 200, response.content
    assert response.json() == {"received": True, "duplicate": False}
    assert top_ups(acme) == [Decimal("20")]
    assert spend_allowance(tenant_id=acme.pk) == 25_000_000  # the trial's 5 and 20


@pytest.mark.parametrize(
    "signing",
    [{"secret": "whsec_someone_else"}, {"at": int(time.time()) - 3600}],
    ids=["wrong secret", "stale timestamp"],
)
def test_a_forged_or_stale_signature_is_a_400_and_changes_nothing(client, acme, customer, signing):
    response = post(client, event("evt_2", "checkout.session.completed", top_up("cs_2")), **signing)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert "Invalid Stripe-Signature" in response.json()["error"]["message"]
    assert top_ups(acme) == []
    assert not WebhookEvent.objects.exists()


def test_a_missing_signature_or_a_tampered_body_is_a_400(client, acme, customer):
    body, header = signed(event("evt_3", "checkout.session.completed", top_up("cs_3")))
    missing = client.post("/billing/stripe/webhook/", body, content_type="application/json")
    tampered = client.post(
        "/billing/stripe/webhook/",
        body.replace(b"2000", b"9000"),
        content_type="application/json",
        headers={"Stripe-Signature": header},
    )
    assert missing.status_code == tampered.status_code == 400
    assert top_ups(acme) == []


def test_a_replayed_event_changes_nothing(client, acme, customer):
    payload = event("evt_4", "checkout.session.completed", top_up("cs_4"))
    assert post(client, payload).json()["duplicate"] is False
    again = post(client, payload)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    # Another event for the same session (Stripe's retries carry new ids too) grants nothing.
    post(client, event("evt_5", "checkout.session.completed", top_up("cs_4")))
    assert top_ups(acme) == [Decimal("20")]


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeliveries_of_one_event_act_once(acme, customer):
    """Eight deliveries at once (on PostgreSQL they race on the unique event id)."""
    payload = event("evt_6", "checkout.session.completed", top_up("cs_6"))
    start = threading.Barrier(8)
    answers: list[int] = []

    def deliver() -> None:
        try:
            start.wait()
            answers.append(post(Client(), payload).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 8
    assert top_ups(acme) == [Decimal("20")]
    assert WebhookEvent.objects.filter(event_id="evt_6").count() == 1


def invoice(invoice_id: str, status: str) -> dict:
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": "cus_acme",
        "status": status,
        "amount_due": 1234,
        "amount_paid": 1234 if status == "paid" else 0,
        "currency": "usd",
        "hosted_invoice_url": "https://invoice.stripe.com/i/acct/inv_1",
        "invoice_pdf": "https://pay.stripe.com/invoice/inv_1/pdf",
    }


def test_a_payment_failure_holds_inference_after_the_grace_period_and_payment_restores_it(
    client, acme, customer, settings
):
    settings.BILLING_GRACE_DAYS = 3
    post(client, event("evt_7", "invoice.payment_failed", invoice("in_1", "open")))
    account = account_for(tenant=acme)
    assert account.payment_failed_at is not None
    assert holds_apply(now=timezone.now() + timedelta(days=2)) == 0
    acme.refresh_from_db()
    assert not acme.billing_hold
    assert holds_apply(now=timezone.now() + timedelta(days=3, minutes=1)) == 1
    acme.refresh_from_db()
    assert acme.billing_hold
    assert spend_allowance(tenant_id=acme.pk) == 0

    post(client, event("evt_8", "invoice.paid", invoice("in_1", "paid")))
    acme.refresh_from_db()
    assert not acme.billing_hold
    assert account_for(tenant=acme).payment_failed_at is None
    stored = Invoice.objects.for_tenant(acme).get()
    assert (stored.status, stored.amount_due_cents) == ("paid", 1234)


def test_subscription_changes_are_recorded(client, acme, customer):
    subscription = {"id": "sub_1", "object": "subscription", "customer": "cus_acme"}
    post(
        client,
        event("evt_9", "customer.subscription.updated", {**subscription, "status": "past_due"}),
    )
    assert account_for(tenant=acme).subscription_status == "past_due"
    post(
        client,
        event("evt_10", "customer.subscription.deleted", {**subscription, "status": "canceled"}),
    )
    account = account_for(tenant=acme)
    assert (account.stripe_subscription_id, account.subscription_status) == ("", "canceled")


def test_an_added_card_is_recorded(client, acme, customer):
    session = {
        "id": "cs_card",
        "customer": "cus_acme",
        "mode": "setup",
        "metadata": {"purpose": "card"},
    }
    post(client, event("evt_11", "checkout.session.completed", session))
    assert account_for(tenant=acme).has_payment_method


def test_webhooks_are_refused_when_not_configured(client, acme, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    response = post(client, event("evt_12", "invoice.paid", invoice("in_2", "paid")))
    assert response.status_code == 400
    assert "not configured" in response.json()["error"]["message"]
