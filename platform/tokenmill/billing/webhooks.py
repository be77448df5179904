"""Stripe webhooks: verified first, then each event id handled exactly once.

The WebhookEvent row (unique event id) is inserted in the same transaction as the
handler's effect: a replay finds it and changes nothing; a concurrent redelivery waits
on the unique index until the first commits, then finds it too.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from tenants.models import Organization
from tenants.services import organization_billing_hold_set
from tokenmill.billing.accounts import credit_grant
from tokenmill.billing.models import Account, CreditGrant, Invoice, WebhookEvent
from tokenmill.billing.stripe_api import WebhookEventData

log = logging.getLogger(__name__)


def _account(customer_id: str | None) -> Account | None:
    if not customer_id:
        return None
    return Account.unscoped.select_related("tenant").filter(stripe_customer_id=customer_id).first()


def _timestamp(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _invoice_record(account: Account, invoice: dict) -> None:
    Invoice.unscoped.update_or_create(
        stripe_invoice_id=invoice["id"],
        defaults={
            "tenant": account.tenant,
            "status": invoice.get("status") or "",
            "amount_due_cents": int(invoice.get("amount_due") or 0),
            "amount_paid_cents": int(invoice.get("amount_paid") or 0),
            "currency": invoice.get("currency") or "usd",
            "hosted_invoice_url": invoice.get("hosted_invoice_url") or "",
            "invoice_pdf": invoice.get("invoice_pdf") or "",
            "period_start": _timestamp(invoice.get("period_start")),
            "updated_at": timezone.now(),
        },
    )


def invoice_paid(invoice: dict) -> None:
    account = _account(invoice.get("customer"))
    if account is None:
        return
    _invoice_record(account, invoice)
    unpaid = Invoice.unscoped.filter(
        tenant=account.tenant, status__in=["open", "uncollectible"]
    ).exclude(stripe_invoice_id=invoice["id"])
    if not unpaid.exists():
        Account.unscoped.filter(pk=account.pk).update(payment_failed_at=None)
        if account.tenant.billing_hold:
            organization_billing_hold_set(organization=account.tenant, held=False)


def invoice_payment_failed(invoice: dict) -> None:
    account = _account(invoice.get("customer"))
    if account is None:
        return
    _invoice_record(account, invoice)
    # The grace period runs from the first failure; billing.accounts.holds_apply ends it.
    Account.unscoped.filter(pk=account.pk, payment_failed_at__isnull=True).update(
        payment_failed_at=timezone.now()
    )


def subscription_changed(subscription: dict) -> None:
    account = _account(subscription.get("customer"))
    if account is None:
        return
    Account.unscoped.filter(pk=account.pk).update(
        stripe_subscription_id=subscription.get("id") or "",
        subscription_status=subscription.get("status") or "",
    )


def subscription_deleted(subscription: dict) -> None:
    account = _account(subscription.get("customer"))
    if account is None:
        return
    Account.unscoped.filter(pk=account.pk, stripe_subscription_id=subscription.get("id")).update(
        stripe_subscription_id="", subscription_status="canceled"
    )


def checkout_completed(session: dict) -> None:
    metadata = session.get("metadata") or {}
    account = _account(session.get("customer"))
    if account is None and metadata.get("organization"):
        tenant = Organization.objects.filter(public_id=metadata["organization"]).first()
        account = Account.unscoped.filter(tenant=tenant).first() if tenant else None
    if account is None:
        return
    if metadata.get("purpose") == "card" or session.get("mode") == "setup":
        Account.unscoped.filter(pk=account.pk).update(has_payment_method=True)
        return
    if metadata.get("purpose") == "top_up" and session.get("payment_status") == "paid":
        cents = int(session.get("amount_total") or 0)
        if cents <= 0:
            return
        if CreditGrant.unscoped.filter(stripe_reference=session["id"]).exists():
            return
        credit_grant(
            tenant=account.tenant,
            kind=CreditGrant.Kind.TOP_UP,
            amount=Decimal(cents) / 100,
            reason=f"Top-up paid through Stripe Checkout ({session['id']})",
            stripe_reference=session["id"],
        )


HANDLERS: dict[str, Callable[[dict], None]] = {
    "invoice.paid": invoice_paid,
    "invoice.payment_failed": invoice_payment_failed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.deleted": subscription_deleted,
    "checkout.session.completed": checkout_completed,
}


def webhook_handle(event: WebhookEventData) -> bool:
    """Apply a verified event once; returns False when it was handled before."""
    try:
        with transaction.atomic():
            WebhookEvent.objects.create(event_id=event.id, event_type=event.type)
            handler = HANDLERS.get(event.type)
            if handler is not None:
                handler(event.object)
    except IntegrityError:
        if WebhookEvent.objects.filter(event_id=event.id).exists():
            return False  # a replay, or a redelivery that lost the race
        raise
    return True
