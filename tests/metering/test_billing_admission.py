"""Billing's spend scope at admission: credits and limits hold under concurrency."""

from decimal import Decimal

import pytest

from tests.gateway.helpers import chat, wait_for
from tests.metering.helpers import fire
from tokenmill.billing import admission, pricing
from tokenmill.billing.accounts import account_for
from tokenmill.billing.models import CreditGrant
from tokenmill.catalog.models import BaseModel
from tokenmill.metering import hooks, limits


class RecordingSpendHook(admission.SpendHook):
    """Billing's own hook, remembering what each admission reserved."""

    def __init__(self):
        self.reserved: list[int] = []

    def cost(self, **kwargs):
        found = super().cost(**kwargs)
        self.reserved.append(found[admission.DIMENSION])
        return found


@pytest.fixture
def spend_hook(settings):
    settings.GATEWAY_LOCAL_CACHE_SECONDS = 0.2
    BaseModel.objects.filter(model_id="tiny-chat").update(
        input_price_per_million=Decimal("1000"), output_price_per_million=Decimal("3000")
    )
    pricing.forget()
    admission.forget_local()
    hook = RecordingSpendHook()
    previous = hooks.register(hook)
    yield hook
    hooks.register(previous)
    admission.forget_local()
    pricing.forget()


def spend_scope(tenant) -> limits.Scope:
    window, reset_at, ttl = limits.month_window()
    return limits.Scope(
        f"spend:org:{tenant.pk}",
        window,
        reset_at,
        ttl,
        (limits.Counter(admission.DIMENSION, None),),
        True,
    )


def cost_of(usage: dict) -> int:
    """A served request's cost at the test's prices (1,000 and 3,000 dollars per 1M)."""
    return pricing.micros_of(
        pricing.Prices(Decimal("1000"), Decimal("3000"), Decimal("0")),
        kind="chat",
        prompt_tokens=usage["prompt_tokens"],
        completion_tokens=usage["completion_tokens"],
    )


def credit_of(tenant, micros: int) -> None:
    account_for(tenant=tenant)
    CreditGrant.objects.for_tenant(tenant).filter(kind="trial").update(
        amount=Decimal(micros) / 1_000_000
    )


def test_the_trial_credit_runs_out_and_inference_is_then_refused(
    store, spend_hook, backend, call, acme, alice_key
):
    credit_of(acme, 200_000)  # 20 cents: a few requests at these prices
    answers = [call(alice_key, "/v1/chat/completions", chat(max_tokens=16)) for _ in range(12)]
    statuses = [answer.status_code for answer in answers]
    assert statuses[0] == 200
    assert 429 in statuses
    refused = answers[statuses.index(429)].json()["error"]
    assert (refused["type"], refused["code"]) == ("insufficient_quota", "insufficient_quota")
    # Once refused, refused: the month's credit is spent.
    assert all(status == 429 for status in statuses[statuses.index(429) :])
    spent = sum(cost_of(answer.json()["usage"]) for answer in answers if answer.status_code == 200)
    assert spent <= 200_000
    wait_for(  # every settle done before the next test's hook is registered
        lambda: limits.used_now(spend_scope(acme), admission.DIMENSION) == spent,
        what="the served requests settled to their real cost",
    )


def test_200_concurrent_requests_on_a_budget_for_50_never_spend_past_it(
    store, spend_hook, backend, gateway, acme, alice_key, globex, charlie_key
):
    count = 200
    body = chat(max_tokens=16)
    credit_of(globex, 10**9)
    assert fire(gateway.url + "/v1/chat/completions", charlie_key, count=1, body=body)[0]
    reserved = spend_hook.reserved[0]  # the worst case of one such request
    credit_of(acme, 50 * reserved)
    backend.state.first_byte_delay = 1.0  # all are in flight before any settles
    answers = fire(gateway.url + "/v1/chat/completions", alice_key, count=count, body=body)
    served = [answer.json()["usage"] for answer in answers if answer.status_code == 200]
    refused = [answer.json()["error"]["code"] for answer in answers if answer.status_code != 200]
    # Each admission reserves the worst case, so at least 50 fit; a request that settled
    # below its worst case gives the rest back, and a later one may use it.
    assert 50 <= len(served) < count
    assert set(refused) == {"insufficient_quota"}
    spent = sum(cost_of(usage) for usage in served)
    assert spent <= 50 * reserved
    wait_for(
        lambda: limits.used_now(spend_scope(acme), admission.DIMENSION) == spent,
        what="every request settled to its real cost",
    )


def test_an_unlimited_organization_gets_no_spend_scope(db, acme, settings):
    from tokenmill.billing.models import Plan
    from tokenmill.billing.services import plan_set

    plan_set(tenant=acme, plan=Plan.ENTERPRISE)
    assert admission.month_cap_micros(tenant_id=acme.pk) is None
    plan_set(tenant=acme, plan=Plan.ENTERPRISE, monthly_spend_limit=Decimal("2"))
    assert admission.month_cap_micros(tenant_id=acme.pk) == 7_000_000  # trial 5 + limit 2


def test_a_fine_tuned_model_is_priced_by_its_base_model(db):
    assert admission.base_model_of("ft:tiny-chat:acme:rooms:abc") == "tiny-chat"
    assert admission.base_model_of("tiny-chat") == "tiny-chat"


def test_an_organizations_own_prices_are_what_admission_reserves_and_settles(
    store, spend_hook, backend, call, acme, alice_key
):
    from tokenmill.catalog.models import PriceOverride

    own = pricing.Prices(Decimal("10000"), Decimal("30000"), Decimal("0"))
    PriceOverride.objects.create(
        model="tiny-chat",
        organization=acme,
        input_price_per_million=own.input,
        output_price_per_million=own.output,
        training_price_per_million=own.training,
        reason="Enterprise contract",
    )
    pricing.forget()
    credit_of(acme, 10**9)

    answer = call(alice_key, "/v1/chat/completions", chat(max_tokens=16))

    assert answer.status_code == 200
    usage = answer.json()["usage"]
    at_own_prices = pricing.micros_of(
        own,
        kind="chat",
        prompt_tokens=usage["prompt_tokens"],
        completion_tokens=usage["completion_tokens"],
    )
    assert at_own_prices == 10 * cost_of(usage)  # ten times the catalog's
    wait_for(
        lambda: limits.used_now(spend_scope(acme), admission.DIMENSION) == at_own_prices,
        what="the request settled at the organization's own prices",
    )
    # The reservation was the worst case at those prices too: 16 completion tokens.
    assert spend_hook.reserved[0] >= pricing.micros_of(
        own, kind="chat", prompt_tokens=usage["prompt_tokens"], completion_tokens=16
    )
