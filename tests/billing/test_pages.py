"""The public pricing page, the dashboard's billing page and the console's billing pages."""

import html
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.billing.helpers import ledger_row
from tokenmill.billing import sync
from tokenmill.billing.accounts import account_for, credit_grant, limit_alerts_send
from tokenmill.billing.models import CreditGrant, MeterEvent, Plan
from tokenmill.billing.services import plan_set
from tokenmill.catalog.models import BaseModel


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_pricing_page_needs_no_login_and_comes_from_the_catalog(db):
    BaseModel.objects.filter(model_id="tiny-chat").update(output_price_per_million=Decimal("0.275"))
    page = Client().get("/pricing/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-model="tiny-chat"' in text
    assert "$0.275" in text
    assert "$0.10" in text and "$0.50" in text  # input and training
    assert "trial credit of $5.00" in text


def test_the_billing_page_shows_this_months_spend_by_model_and_key(acme, alice, globex, charlie):
    now = datetime.now(UTC)
    ledger_row(acme, hour=now, key="key_one", prompt=10_000_000, completion=5_000_000)  # $2
    ledger_row(
        acme,
        hour=now,
        model="ft:tiny-chat:acme:x:1",
        base_model="tiny-chat",
        key="key_two",
        prompt=1_000_000,
    )
    ledger_row(globex, hour=now, key="key_globex", prompt=99_000_000)
    page = logged_in(alice).get(reverse("dashboard:billing"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Ledger-only billing" in text
    assert "key_one" in text and "key_two" in text
    assert "key_globex" not in text
    assert "ft:tiny-chat:acme:x:1" in text
    assert "<dd data-spent>$2.10</dd>" in text
    assert "<dd data-credits>$2.90</dd>" in text
    assert "Free plan" in text
    assert "data-daily-chart" in text
    assert "Add a card" not in text  # no Stripe, no links


def test_the_billing_page_offers_stripe_links_to_admins(fake_stripe, acme, alice, bob):
    page = logged_in(alice).get(reverse("dashboard:billing")).content.decode()
    assert "Add a card" in page and "Top up" in page and "Ledger-only" not in page
    assert "Add a card" not in logged_in(bob).get(reverse("dashboard:billing")).content.decode()

    card = logged_in(alice).post(reverse("dashboard:billing-checkout"), {"action": "card"})
    assert card.status_code == 302
    assert card["Location"].startswith("https://checkout.stripe.com/c/pay/cs_")
    assert fake_stripe.paths("/v1/checkout/sessions")[0].form["mode"] == "setup"

    top_up = logged_in(alice).post(
        reverse("dashboard:billing-checkout"), {"action": "top_up", "amount": "25.50"}
    )
    assert top_up.status_code == 302
    session = fake_stripe.paths("/v1/checkout/sessions")[1].form
    assert session["line_items[0][price_data][unit_amount]"] == "2550"
    assert session["metadata[organization]"] == acme.public_id
    assert len(fake_stripe.paths("/v1/customers")) == 1  # one Customer for both

    portal = logged_in(alice).post(reverse("dashboard:billing-checkout"), {"action": "portal"})
    assert portal["Location"] == "https://billing.stripe.com/p/session/x"


@pytest.mark.parametrize(
    ("amount", "message"),
    [("abc", "'abc' is not an amount in dollars."), ("1", "A top-up is between $5 and $10000")],
)
def test_a_bad_top_up_amount_says_what_is_wrong(fake_stripe, acme, alice, amount, message):
    response = logged_in(alice).post(
        reverse("dashboard:billing-checkout"), {"action": "top_up", "amount": amount}, follow=True
    )
    assert message in html.unescape(response.content.decode())
    assert fake_stripe.paths("/v1/checkout/sessions") == []


def test_members_below_admin_cannot_open_checkout(fake_stripe, acme, alice, bob):
    response = logged_in(bob).post(reverse("dashboard:billing-checkout"), {"action": "card"})
    assert response.status_code == 403


def test_owners_are_told_once_a_month_at_80_percent_of_the_limit(acme, alice, settings):
    plan_set(tenant=acme, plan=Plan.PAY_AS_YOU_GO, monthly_spend_limit=Decimal("10"))
    CreditGrant.objects.for_tenant(acme).delete()
    now = datetime.now(UTC)
    ledger_row(acme, hour=now, prompt=70_000_000)  # $7
    assert limit_alerts_send(now=now) == 0
    ledger_row(acme, hour=now, key="k", prompt=11_000_000)  # $8.10
    assert limit_alerts_send(now=now) == 1
    assert limit_alerts_send(now=now) == 0
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@example.com"]
    assert "81% of its monthly spend limit" in mail.outbox[0].subject


def test_the_console_records_who_granted_credit_and_why(console, operator, acme):
    account_for(tenant=acme)
    response = console.post(
        reverse("admin:billing_creditgrant_add"),
        {"tenant": acme.pk, "kind": "grant", "amount": "12.50", "reason": "Outage on Nov 3"},
    )
    assert response.status_code == 302, response.content
    grant = CreditGrant.objects.for_tenant(acme).get(kind="grant")
    assert (grant.amount, grant.reason, grant.granted_by) == (
        Decimal("12.50"),
        "Outage on Nov 3",
        operator,
    )
    change = console.get(reverse("admin:billing_creditgrant_change", args=[grant.pk]))
    assert b"Save" not in change.content  # grants are never edited


def test_the_console_shows_revenue_and_the_sync_status_with_a_retry(console, fake_stripe, acme):
    from tokenmill.billing.services import statements_close

    plan_set(tenant=acme, plan=Plan.PAY_AS_YOU_GO)
    ledger_row(acme, hour=datetime(2026, 11, 5, tzinfo=UTC), prompt=100_000_000)
    statements_close(now=datetime(2026, 12, 3, tzinfo=UTC))
    revenue = console.get(reverse("admin:billing_statement_changelist")).content.decode()
    assert "Revenue of the statements listed" in revenue
    assert "acme" in revenue

    ledger_row(acme, hour=datetime.now(UTC), prompt=10)
    sync.customers_ensure(sync.SyncResult())
    fake_stripe.always_fail = 500
    sync.sync_run()
    status = console.get(reverse("admin:billing_meterevent_changelist")).content.decode()
    assert "2 events waiting" in status and "2 failing" in status  # November's and today's
    fake_stripe.always_fail = None
    retried = console.post(
        reverse("admin:billing_meterevent_changelist"),
        {
            "action": "retry_failed",
            "_selected_action": list(MeterEvent.unscoped.values_list("pk", flat=True)),
        },
        follow=True,
    )
    assert retried.status_code == 200
    assert "2 failing events reset; 2 sent" in retried.content.decode()
    assert sync.sync_status()["waiting"] == 0


@pytest.fixture
def operator(db):
    from tenants.models import User

    return User.objects.create_superuser("ops@tokenmill.example", "pw-123456789")


@pytest.fixture
def console(operator) -> Client:
    return logged_in(operator)


def test_credit_grant_refuses_a_float():
    with pytest.raises(TypeError):
        credit_grant(tenant=None, kind="grant", amount=1.0, reason="x")


def test_a_new_free_organization_sees_credits_only_and_no_empty_chart(acme, alice):
    page = logged_in(alice).get(reverse("dashboard:billing")).content.decode()
    assert "<dd data-limit>Credits only</dd>" in page
    assert '<p class="muted" data-daily-chart>No spend yet this month.</p>' in page
    assert "<svg" not in page.split('id="period-title"')[1].split("</section>")[0]
