"""Requests and tokens per minute, per key and per organization, on both stores."""

import openai
import pytest

from tenants import services as tenant_services
from tenants.models import Organization
from tests.factories import make_key
from tests.gateway.helpers import chat
from tests.metering.helpers import fire
from tokenmill.metering import limits


@pytest.fixture
def requests_close_connections(monkeypatch):
    """Django under ASGI runs each request in a thread of its own; a connection kept open
    for reuse there is dropped with the thread (a ResourceWarning on PostgreSQL)."""
    from django.db import connections

    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


HEADERS = [
    f"x-ratelimit-{part}-{dimension}"
    for dimension in ("requests", "tokens")
    for part in ("limit", "remaining", "reset")
]


def test_a_burst_at_a_key_limited_to_10_a_minute_lets_exactly_10_through(
    store, backend, gateway, acme, alice
):
    key = make_key(acme, alice, requests_per_minute=10)
    answers = fire(gateway.url + "/v1/chat/completions", key, count=25, body=chat())
    statuses = sorted(response.status_code for response in answers)
    assert statuses == [200] * 10 + [429] * 15
    assert backend.state.served == 10


def test_a_burst_at_a_non_inference_endpoint_lets_exactly_the_limit_through(
    store, backend, gateway, acme, alice, requests_close_connections
):
    key = make_key(acme, alice, requests_per_minute=10)
    answers = fire(gateway.url + "/v1/models", key, count=25)
    assert sorted(r.status_code for r in answers) == [200] * 10 + [429] * 15
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["error"] == {
        "message": refused.json()["error"]["message"],
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert "Limit 10" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1
    allowed = next(r for r in answers if r.status_code == 200)
    assert allowed.headers["x-ratelimit-limit-requests"] == "10"


def test_the_platform_api_counts_against_the_same_minute(
    store, backend, gateway, acme, alice, requests_close_connections
):
    key = make_key(acme, alice, requests_per_minute=2)
    assert fire(gateway.url + "/api/v1/organization", key, count=1)[0].status_code == 200
    assert (
        fire(gateway.url + "/v1/chat/completions", key, count=1, body=chat())[0].status_code == 200
    )
    refused = fire(gateway.url + "/api/v1/organization", key, count=1)[0]
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_the_openai_sdk_sees_a_rate_limit_error_with_every_header(
    store, backend, gateway, acme, alice
):
    key = make_key(acme, alice, requests_per_minute=1, tokens_per_minute=10_000)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="tiny-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=16
    )
    for name in HEADERS:
        assert name in raw.headers, name
    assert raw.headers["x-ratelimit-limit-requests"] == "1"
    assert raw.headers["x-ratelimit-remaining-requests"] == "0"
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="tiny-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=16
        )
    error = caught.value
    assert error.code == "rate_limit_exceeded"
    assert error.type == "requests"
    assert "requests per minute (RPM) on this API key: Limit 1" in error.message
    assert int(error.response.headers["retry-after"]) >= 1
    for name in HEADERS:
        assert name in error.response.headers, name


def test_tokens_are_reserved_and_what_was_not_used_given_back(store, backend, call, acme, alice):
    key = make_key(acme, alice, tokens_per_minute=1000)
    first = call(key, "/v1/chat/completions", chat(max_tokens=100))
    reserved = 1000 - int(first.headers["x-ratelimit-remaining-tokens"])
    assert reserved >= 100 + 1  # max_tokens plus the prompt as counted before forwarding
    used = first.json()["usage"]["total_tokens"]
    assert used < reserved
    second = call(key, "/v1/chat/completions", chat(max_tokens=100))
    # The first request's unused reservation came back before the second was admitted.
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == 1000 - used - reserved


def test_a_request_past_the_tokens_left_is_refused_with_type_tokens(
    store, backend, call, acme, alice
):
    key = make_key(acme, alice, tokens_per_minute=50)
    refused = call(key, "/v1/chat/completions", chat(max_tokens=100))
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "tokens"
    assert "tokens per minute (TPM) on this API key: Limit 50" in refused.json()["error"]["message"]
    assert backend.state.served == 0


def test_the_organization_limit_holds_across_its_keys(store, backend, call, acme, alice, bob):
    Organization.objects.filter(pk=acme.pk).update(requests_per_minute=2)
    tenant_services.organization_limits_changed(tenant=acme)
    first, second = make_key(acme, alice), make_key(acme, bob, scopes=["models"])
    assert call(first, "/v1/chat/completions", chat()).status_code == 200
    assert call(second, "/v1/chat/completions", chat()).status_code == 200
    refused = call(first, "/v1/chat/completions", chat())
    assert refused.status_code == 429
    assert "on your organization: Limit 2" in refused.json()["error"]["message"]


def test_the_plan_default_applies_when_the_organization_has_none(
    store, settings, backend, call, acme, alice
):
    settings.ORG_REQUESTS_PER_MINUTE = 1
    key = make_key(acme, alice)
    assert call(key, "/v1/chat/completions", chat()).status_code == 200
    assert call(key, "/v1/chat/completions", chat()).status_code == 429


def test_a_suspended_organization_is_refused(store, backend, call, acme, alice):
    key = make_key(acme, alice)
    tenant_services.organization_set_status(tenant=acme, status="suspended", reason="unpaid")
    refused = call(key, "/v1/chat/completions", chat())
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "organization_suspended"
    assert "suspended" in refused.json()["error"]["message"]


def test_a_refusal_takes_nothing_from_the_other_scope(store, db):
    key_limit = limits.rate_scope("key:1", requests=1, tokens=None)
    org_limit = limits.rate_scope("org:1", requests=5, tokens=None)
    assert limits.reserve([key_limit, org_limit]).reservation is not None
    refused = limits.reserve([key_limit, org_limit])
    assert refused.reservation is None and refused.refused == "requests"
    # The org's window took only the admitted request: four more fit on another key.
    other = limits.rate_scope("key:2", requests=None, tokens=None)
    assert all(limits.reserve([other, org_limit]).reservation for _ in range(4))
    assert limits.reserve([other, org_limit]).reservation is None


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.02, "20ms"), (1, "1s"), (59.2, "1m0s"), (360, "6m0s"), (12.5, "13s")]
)
def test_resets_read_like_openais(seconds, shown):
    assert limits.format_reset(seconds) == shown
