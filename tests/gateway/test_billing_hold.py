"""A payment failure past its grace period pauses inference; paying resumes it."""

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from tests.billing.stripe_events import SECRET, event, post
from tests.gateway.helpers import chat, wait_for
from tests.gateway.test_playground import _session
from tokenmill.billing.accounts import account_for, holds_apply
from tokenmill.billing.models import Account

HOLD_MESSAGE = (
    "Inference is paused for this organization because a payment failed. Pay the open "
    "invoice (or update the payment method) on the dashboard's billing page to resume."
)


@pytest.fixture
def customer(acme, settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    settings.BILLING_GRACE_DAYS = 7
    account_for(tenant=acme)
    Account.objects.for_tenant(acme).update(stripe_customer_id="cus_acme")


def invoice(status: str) -> dict:
    return {"id": "in_1", "object": "invoice", "customer": "cus_acme", "status": status}


def test_inference_is_refused_after_the_grace_period_until_the_invoice_is_paid(
    backend, call, client, acme, alice, alice_key, customer, gateway
):
    post(client, event("evt_fail", "invoice.payment_failed", invoice("open")))
    assert holds_apply() == 0  # within the grace period inference goes on
    assert call(alice_key, "/v1/chat/completions", chat()).status_code == 200

    assert holds_apply(now=timezone.now() + timedelta(days=7, seconds=1)) == 1
    refused = wait_for(
        lambda: (r := call(alice_key, "/v1/chat/completions", chat())).status_code == 402 and r,
        what="the held organization to be refused",
    )
    assert refused.json()["error"] == {
        "message": HOLD_MESSAGE,
        "type": "insufficient_quota",
        "param": None,
        "code": "payment_required",
    }
    served = backend.state.served
    with _session(gateway, alice) as session:
        playground = session.post("/playground/chat", json=chat())
    assert playground.status_code == 402
    assert backend.state.served == served
    # The rest of the API keeps working: the organization can still see its data.
    models = httpx.get(
        gateway.url + "/v1/models", headers={"authorization": f"Bearer {alice_key}"}, timeout=30
    )
    assert models.status_code == 200

    post(client, event("evt_paid", "invoice.paid", invoice("paid")))
    wait_for(
        lambda: call(alice_key, "/v1/chat/completions", chat()).status_code == 200,
        what="the paid organization to be served again",
    )
