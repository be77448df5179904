"""Prices, statements, credits and the spend allowance, exact to the cent."""

import random
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from tests.billing.helpers import ledger_row, trial_granted_at
from tokenmill.billing import pricing, statements
from tokenmill.billing.accounts import account_for, credit_grant, spend_allowance
from tokenmill.billing.models import Plan, Statement
from tokenmill.billing.services import plan_set, statements_close
from tokenmill.catalog.models import BaseModel, PriceOverride

NOVEMBER = date(2026, 11, 1)
IN_NOVEMBER = datetime(2026, 11, 10, 12, tzinfo=UTC)
DECEMBER_3 = datetime(2026, 12, 3, tzinfo=UTC)


@pytest.fixture
def priced(db):
    """Prices with six decimals, so rounding matters."""
    BaseModel.objects.filter(model_id="tiny-chat").update(
        input_price_per_million=Decimal("0.123457"),
        output_price_per_million=Decimal("0.987654"),
        training_price_per_million=Decimal("2.500001"),
    )
    BaseModel.objects.filter(model_id="all-MiniLM-L6-v2").update(
        input_price_per_million=Decimal("0.020001")
    )


def test_a_fine_tuned_model_costs_its_base_models_prices_unless_an_operator_sets_its_own(
    acme, globex, priced
):
    ft = "ft:tiny-chat:acme:x:abc"
    prices = pricing.prices_for(tenant_id=acme.pk, model=ft, base_model="tiny-chat")
    assert prices.input == Decimal("0.123457")

    PriceOverride.objects.create(
        model=ft,
        input_price_per_million=Decimal("1"),
        output_price_per_million=Decimal("2"),
        training_price_per_million=Decimal("3"),
    )
    PriceOverride.objects.create(
        model="tiny-chat",
        organization=globex,
        input_price_per_million=Decimal("0.05"),
        output_price_per_million=Decimal("0.06"),
        training_price_per_million=Decimal("0.07"),
        reason="Enterprise contract",
    )
    pricing.forget()
    assert pricing.prices_for(tenant_id=acme.pk, model=ft, base_model="tiny-chat").input == 1
    # Globex's own price for the base model; acme keeps the catalog's.
    globex_prices = pricing.prices_for(
        tenant_id=globex.pk, model="tiny-chat", base_model="tiny-chat"
    )
    assert globex_prices.output == Decimal("0.06")
    acme_prices = pricing.prices_for(tenant_id=acme.pk, model="tiny-chat", base_model="tiny-chat")
    assert acme_prices.output == Decimal("0.987654")


def test_request_cost_is_whole_micro_dollars_rounded_up(acme, priced):
    cost = pricing.request_cost_micros(
        tenant_id=acme.pk,
        model="tiny-chat",
        base_model="tiny-chat",
        prompt_tokens=3,
        completion_tokens=1,
        kind="chat",
    )
    # 3 * 0.123457 + 1 * 0.987654 = 1.358025 micro-dollars -> 2
    assert cost == 2
    training = pricing.request_cost_micros(
        tenant_id=acme.pk,
        model="tiny-chat",
        base_model="tiny-chat",
        prompt_tokens=1_000_000,
        completion_tokens=0,
        kind="training",
    )
    assert training == 2_500_001


def test_a_month_of_generated_usage_gives_statement_totals_equal_to_the_ledger_to_the_cent(
    acme, priced
):
    trial_granted_at(acme, datetime(2026, 10, 20, tzinfo=UTC))
    generator = random.Random(9)
    expected: dict[tuple, int] = {}
    models = [("tiny-chat", "chat"), ("tiny-chat", "completion"), ("all-MiniLM-L6-v2", "embedding")]
    for hour in range(30 * 24):
        at = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=hour)
        model, kind = models[hour % 3]
        prompt, completion = generator.randint(0, 90_000), generator.randint(0, 40_000)
        if kind == "embedding":
            completion = 0
        ledger_row(acme, hour=at, model=model, kind=kind, prompt=prompt, completion=completion)
        expected[(model, kind, "input")] = expected.get((model, kind, "input"), 0) + prompt
        if completion:
            expected[(model, kind, "output")] = (
                expected.get((model, kind, "output"), 0) + completion
            )
    ledger_row(acme, hour=IN_NOVEMBER, kind="training", prompt=123_457)
    expected[("tiny-chat", "training", "training")] = 123_457
    # Usage of the next month and of another organization is not in this statement.
    ledger_row(acme, hour=DECEMBER_3, prompt=10**9)

    statement = statements.statement_compute(tenant=acme, month=NOVEMBER)
    price = {
        "input": {"tiny-chat": Decimal("0.123457"), "all-MiniLM-L6-v2": Decimal("0.020001")},
        "output": {"tiny-chat": Decimal("0.987654")},
        "training": {"tiny-chat": Decimal("2.500001")},
    }
    by_line = {(line.model, line.kind, line.token_type): line for line in statement.lines}
    assert {key: line.tokens for key, line in by_line.items()} == expected
    total = Decimal("0")
    for (model, kind, token_type), tokens in expected.items():
        amount = (price[token_type][model] * tokens / 1_000_000).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
        assert by_line[(model, kind, token_type)].amount == amount
        total += amount
    assert statement.subtotal == total
    # The trial credit ($5) is applied first.
    assert statement.credits_applied == min(total, Decimal("5.00"))
    assert statement.total == total - statement.credits_applied


def test_a_closed_months_statement_is_stored_and_regenerating_it_gives_the_same_numbers(
    acme, priced
):
    trial_granted_at(acme, datetime(2026, 10, 20, tzinfo=UTC))
    ledger_row(acme, hour=IN_NOVEMBER, prompt=7_777_777, completion=3_333_333)
    assert statements_close(now=DECEMBER_3) == 1
    stored = Statement.objects.for_tenant(acme).get(month=NOVEMBER)
    again = statements.statement_compute(tenant=acme, month=NOVEMBER)
    assert (again.subtotal, again.credits_applied, again.total) == (
        stored.subtotal,
        stored.credits_applied,
        stored.total,
    )
    assert [line.as_dict() for line in again.lines] == stored.lines
    assert stored.total == Decimal("0.96") + Decimal("3.29") - Decimal("4.25")  # credit covers it
    assert statements_close(now=DECEMBER_3) == 0  # once


def test_a_month_not_ended_is_not_closed(acme, priced):
    ledger_row(acme, hour=IN_NOVEMBER, prompt=1000)
    with pytest.raises(ValueError, match="has not ended"):
        statements.statement_close(tenant=acme, month=NOVEMBER, now=IN_NOVEMBER)
    # The day after the month ends is still open for late usage.
    assert statements_close(now=datetime(2026, 12, 1, 12, tzinfo=UTC)) == 0


def test_credits_carry_over_months_and_are_never_applied_twice(acme, priced):
    ledger_row(acme, hour=datetime(2026, 10, 5, tzinfo=UTC), prompt=20_000_000)  # $2.47
    ledger_row(acme, hour=IN_NOVEMBER, prompt=40_000_000)  # $4.94
    trial_granted_at(acme, datetime(2026, 10, 1, tzinfo=UTC))
    october = statements.statement_compute(tenant=acme, month=date(2026, 10, 1))
    november = statements.statement_compute(tenant=acme, month=NOVEMBER)
    assert october.credits_applied == Decimal("2.47")
    assert november.credits_applied == Decimal("2.53")
    assert november.total == Decimal("4.94") - Decimal("2.53")


def test_the_free_plans_allowance_is_the_trial_credit_left(acme, priced):
    assert account_for(tenant=acme).plan == Plan.FREE
    now = datetime.now(UTC)
    assert spend_allowance(tenant_id=acme.pk) == 5_000_000
    ledger_row(acme, hour=now, prompt=10_000_000)  # 1.23457 dollars
    assert spend_allowance(tenant_id=acme.pk) == 5_000_000 - 1_234_570
    ledger_row(acme, hour=now, kind="training", prompt=10_000_000)  # 25.00001 dollars
    assert spend_allowance(tenant_id=acme.pk) == 0


def test_paying_plans_add_their_limit_and_enterprise_may_have_none(acme, priced, settings):
    settings.BILLING_PAYG_MONTHLY_LIMIT = Decimal("100")
    plan_set(tenant=acme, plan=Plan.PAY_AS_YOU_GO)
    assert spend_allowance(tenant_id=acme.pk) == 105_000_000
    ledger_row(acme, hour=datetime.now(UTC), prompt=100_000_000)  # $12.3457
    assert spend_allowance(tenant_id=acme.pk) == 105_000_000 - 12_345_700
    plan_set(tenant=acme, plan=Plan.PAY_AS_YOU_GO, monthly_spend_limit=Decimal("10"))
    assert spend_allowance(tenant_id=acme.pk) == 15_000_000 - 12_345_700
    plan_set(tenant=acme, plan=Plan.ENTERPRISE)
    assert spend_allowance(tenant_id=acme.pk) is None
    plan_set(tenant=acme, plan=Plan.ENTERPRISE, monthly_spend_limit=Decimal("7"))
    assert spend_allowance(tenant_id=acme.pk) == 0  # 12.35 spent: 5 credit + 7 limit is past


def test_credit_grants_say_who_and_why_and_a_top_up_counts_once(acme, operator_user):
    with pytest.raises(ValueError, match="says why"):
        credit_grant(tenant=acme, kind="grant", amount=Decimal("3"), reason=" ")
    with pytest.raises(TypeError):
        credit_grant(tenant=acme, kind="grant", amount=3.0, reason="float")
    grant = credit_grant(
        tenant=acme, kind="grant", amount=Decimal("3"), reason="outage", granted_by=operator_user
    )
    assert grant.granted_by == operator_user
    credit_grant(tenant=acme, kind="adjustment", amount=Decimal("-1.5"), reason="correction")
    assert spend_allowance(tenant_id=acme.pk) == 6_500_000


@pytest.fixture
def operator_user(db):
    from tenants.models import User

    return User.objects.create_superuser("ops@tokenmill.example", "pw-123456789")
