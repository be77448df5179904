"""The one module that talks to Stripe, through the official SDK's StripeClient.

Everything else calls these functions with our own values and gets plain values or
our own errors back: `StripeRetryable` (429, 5xx, a network failure: try again later,
with the same identifiers) and `StripeRefused` (anything else: retrying will not help).
"""

import json
from dataclasses import dataclass
from datetime import datetime

import stripe
from django.conf import settings

#: Seconds a webhook's signed timestamp may be away from now.
WEBHOOK_TOLERANCE_SECONDS = 300


class StripeRetryable(Exception):
    pass


class StripeRefused(Exception):
    pass


class WebhookInvalid(Exception):
    pass


def configured() -> bool:
    """Without a secret key billing runs ledger-only: nothing is sent to Stripe."""
    return bool(settings.STRIPE_SECRET_KEY)


def client() -> stripe.StripeClient:
    addresses = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    # Retries are ours (billing.sync), with backoff and stable identifiers.
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY, base_addresses=addresses, max_network_retries=0
    )


def _call(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except stripe.RateLimitError as error:
        raise StripeRetryable(f"Stripe rate limit: {error.user_message or error}") from None
    except stripe.APIConnectionError as error:
        raise StripeRetryable(f"Stripe unreachable: {error.user_message or error}") from None
    except stripe.StripeError as error:
        status = error.http_status or 0
        message = f"Stripe answered {status}: {error.user_message or error}"
        if status >= 500 or status in (409,):
            raise StripeRetryable(message) from None
        raise StripeRefused(message) from None


def customer_create(*, organization_public_id: str, name: str, email: str | None) -> str:
    params = {"name": name, "metadata": {"organization": organization_public_id}}
    if email:
        params["email"] = email
    customer = _call(
        client().v1.customers.create,
        params,
        {"idempotency_key": f"tm-customer-{organization_public_id}"},
    )
    return customer.id


def subscription_create(*, customer_id: str, price_ids: list[str]) -> tuple[str, str]:
    """A metered subscription (one item per meter's price); returns its id and status."""
    subscription = _call(
        client().v1.subscriptions.create,
        {"customer": customer_id, "items": [{"price": price} for price in price_ids]},
        {"idempotency_key": f"tm-subscription-{customer_id}"},
    )
    return subscription.id, subscription.status


def meter_event_create(
    *,
    event_name: str,
    customer_id: str,
    value: int,
    identifier: str,
    timestamp: datetime,
    model: str,
) -> None:
    _call(
        client().v1.billing.meter_events.create,
        {
            "event_name": event_name,
            "identifier": identifier,
            "timestamp": int(timestamp.timestamp()),
            "payload": {"stripe_customer_id": customer_id, "value": str(value), "model": model},
        },
        {"idempotency_key": identifier},
    )


def meter_event_cancel(*, event_name: str, identifier: str) -> None:
    _call(
        client().v1.billing.meter_event_adjustments.create,
        {"event_name": event_name, "type": "cancel", "cancel": {"identifier": identifier}},
        {"idempotency_key": f"cancel-{identifier}"},
    )


def checkout_card_session(*, customer_id: str, success_url: str, cancel_url: str) -> str:
    """A Checkout Session that saves a card for the subscription; returns its URL."""
    session = _call(
        client().v1.checkout.sessions.create,
        {
            "mode": "setup",
            "customer": customer_id,
            "currency": "usd",
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": {"purpose": "card"},
        },
    )
    return session.url


def checkout_top_up_session(
    *,
    customer_id: str,
    organization_public_id: str,
    amount_cents: int,
    success_url: str,
    cancel_url: str,
) -> str:
    """A Checkout Session that pays for prepaid credit; its completion grants it."""
    session = _call(
        client().v1.checkout.sessions.create,
        {
            "mode": "payment",
            "customer": customer_id,
            "success_url": success_url,
            "cancel_url": cancel_url,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": amount_cents,
                        "product_data": {"name": "Tokenmill prepaid credit"},
                    },
                }
            ],
            "metadata": {"purpose": "top_up", "organization": organization_public_id},
        },
    )
    return session.url


def portal_session(*, customer_id: str, return_url: str) -> str:
    session = _call(
        client().v1.billing_portal.sessions.create,
        {"customer": customer_id, "return_url": return_url},
    )
    return session.url


@dataclass(frozen=True)
class WebhookEventData:
    id: str
    type: str
    object: dict


def webhook_event(*, payload: bytes, signature: str | None) -> WebhookEventData:
    """Verify the Stripe-Signature header (with tolerance) and parse the event."""
    if not settings.STRIPE_WEBHOOK_SECRET:
        raise WebhookInvalid("Webhooks are not configured (STRIPE_WEBHOOK_SECRET is empty).")
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(
            text, signature or "", settings.STRIPE_WEBHOOK_SECRET, WEBHOOK_TOLERANCE_SECONDS
        )
        event = json.loads(text)
    except stripe.SignatureVerificationError as error:
        raise WebhookInvalid(f"Invalid Stripe-Signature: {error.user_message or error}") from None
    except (UnicodeDecodeError, ValueError):
        raise WebhookInvalid("The webhook body is not JSON.") from None
    try:
        return WebhookEventData(
            id=str(event["id"]), type=str(event["type"]), object=dict(event["data"]["object"])
        )
    except (KeyError, TypeError):
        raise WebhookInvalid("The webhook body is not a Stripe event.") from None
