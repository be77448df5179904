"""Stripe events as Stripe sends them: a JSON body and a Stripe-Signature header."""

import hashlib
import hmac
import json
import time

SECRET = "whsec_test_secret"


def signed(event: dict, *, secret: str = SECRET, at: int | None = None) -> tuple[bytes, str]:
    body = json.dumps(event).encode()
    at = int(time.time()) if at is None else at
    signature = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={at},v1={signature}"


def event(event_id: str, event_type: str, obj: dict) -> dict:
    return {"id": event_id, "object": "event", "type": event_type, "data": {"object": obj}}


def post(client, payload: dict, **kwargs):
    body, header = signed(payload, **kwargs)
    return client.post(
        "/billing/stripe/webhook/",
        body,
        content_type="application/json",
        headers={"Stripe-Signature": header},
    )
