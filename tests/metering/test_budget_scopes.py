"""The admission hook's budget scopes: reserved with the rate limits, settled to the real cost.

A test-local spend hook stands in for billing: 10 micro-dollars a token, a monthly cap.
"""

import pytest

from tests.gateway.helpers import chat, wait_for
from tests.metering.helpers import fire
from tokenmill.metering import hooks, limits

PRICE = 10  # micro-dollars per token


class SpendHook:
    def __init__(self, cap: int):
        self.cap = cap
        self.asked: list[tuple] = []
        self.reserved: list[int] = []  # each cost asked for, in order

    def scope(self, tenant_id: int) -> limits.Scope:
        window, reset_at, ttl = limits.month_window()
        return limits.Scope(
            name=f"spend:org:{tenant_id}",
            window=window,
            reset_at=reset_at,
            ttl=ttl,
            counters=(limits.Counter("microdollars", self.cap),),
            quota=True,
        )

    async def scopes(self, *, tenant_id, key_id, model):
        self.asked.append((tenant_id, key_id, model))
        return [self.scope(tenant_id)]

    def cost(self, *, tenant_id, model, prompt_tokens, completion_tokens, kind="chat"):
        found = (prompt_tokens + completion_tokens) * PRICE
        self.reserved.append(found)
        return {"microdollars": found}


@pytest.fixture
def spend():
    def install(cap: int) -> SpendHook:
        hook = SpendHook(cap)
        hooks.register(hook)
        return hook

    yield install
    hooks.register(None)


def test_a_request_is_settled_to_its_real_cost(store, spend, backend, call, acme, alice_key):
    hook = spend(cap=1_000_000)
    usage = call(alice_key, "/v1/chat/completions", chat(max_tokens=16)).json()["usage"]
    assert hook.asked and hook.asked[0][0] == acme.pk and hook.asked[0][2] == "tiny-chat"
    scope = hook.scope(acme.pk)
    wait_for(
        lambda: limits.used_now(scope, "microdollars") == usage["total_tokens"] * PRICE,
        what="the spend settled to the real cost",
    )


def test_a_spent_budget_is_refused_as_insufficient_quota(
    store, spend, backend, call, acme, alice_key
):
    spend(cap=100)  # less than 16 completion tokens at 10 micro-dollars
    refused = call(alice_key, "/v1/chat/completions", chat(max_tokens=16))
    assert refused.status_code == 429
    assert refused.json()["error"] == {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
    assert "retry-after" not in refused.headers  # waiting does not refill a budget
    assert backend.state.served == 0


def test_the_budget_refusal_takes_nothing_from_the_rate_limits(store, db):
    window, reset_at, ttl = limits.month_window()
    budget = limits.Scope(
        "spend:org:9", window, reset_at, ttl, (limits.Counter("microdollars", 500, 400),), True
    )
    rate = limits.rate_scope("org:9", requests=10, tokens=None)
    assert limits.reserve([rate, budget]).reservation is not None
    refused = limits.reserve([rate, budget])
    assert refused.reservation is None
    assert (refused.refused, refused.refused_scope.name) == ("microdollars", "spend:org:9")
    assert limits.used_now(rate, "requests") == 1  # the refused request took no request
    assert limits.used_now(budget, "microdollars") == 400


def test_a_burst_never_spends_past_the_budget(
    store, spend, backend, gateway, acme, alice_key, charlie_key
):
    hook = spend(cap=10**9)
    body = chat(max_tokens=16)
    assert fire(gateway.url + "/v1/chat/completions", charlie_key, count=1, body=body)[0]
    reserved = hook.reserved[0]  # what one such request reserves (asked at its admission)
    hook.cap = 5 * reserved
    backend.state.first_byte_delay = 1.0  # all are in flight before any settles
    answers = fire(gateway.url + "/v1/chat/completions", alice_key, count=20, body=body)
    statuses = sorted(response.status_code for response in answers)
    assert statuses == [200] * 5 + [429] * 15
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 429} == {
        "insufficient_quota"
    }
    served = sum(r.json()["usage"]["total_tokens"] for r in answers if r.status_code == 200)
    scope = hook.scope(acme.pk)
    wait_for(
        lambda: limits.used_now(scope, "microdollars") == served * PRICE,
        what="the five settled to their real cost",
    )


@pytest.mark.parametrize(("now", "window"), [(1_796_083_200, "202612"), (1_798_761_599, "202612")])
def test_the_month_window_ends_with_the_calendar_month(now, window):
    found, ends, ttl = limits.month_window(now)
    assert found == window
    assert ends == 1_798_761_600  # 2027-01-01 00:00 UTC
    assert ttl == ends - now + 86_400
