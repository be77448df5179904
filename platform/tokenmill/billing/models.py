"""Plans, credits, statements, invoices, Stripe sync state and processed webhooks.

Money is Decimal (dollars, 6 places for prices and credits, 2 for billed amounts) or
integer micro-dollars; never float.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.scoping import TenantScopedManager, UnscopedManager

MONEY = {"max_digits": 14, "decimal_places": 6}


class Plan(models.TextChoices):
    FREE = "free", "Free"
    PAY_AS_YOU_GO = "payg", "Pay as you go"
    ENTERPRISE = "enterprise", "Enterprise"


class Account(models.Model):
    """An organization's billing: its plan, spend limit, Stripe customer and payment state."""

    tenant = models.OneToOneField(
        "tenants.Organization", on_delete=models.CASCADE, related_name="billing_account"
    )
    plan = models.CharField(max_length=16, choices=Plan.choices, default=Plan.FREE)
    # Dollars per calendar month (UTC) after credits; None: the plan's default
    # (Free: nothing beyond credits; Pay as you go: BILLING_PAYG_MONTHLY_LIMIT;
    # Enterprise: no limit).
    monthly_spend_limit = models.DecimalField(null=True, blank=True, **MONEY)
    # The first day of the month for which owners were told they passed 80 % of the limit.
    limit_alert_month = models.DateField(null=True, blank=True)
    stripe_customer_id = models.CharField(max_length=80, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=80, blank=True)
    subscription_status = models.CharField(max_length=32, blank=True)
    has_payment_method = models.BooleanField(default=False)
    # Set by invoice.payment_failed, cleared by invoice.paid; inference stops
    # BILLING_GRACE_DAYS after it.
    payment_failed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    unscoped = UnscopedManager()
    objects = TenantScopedManager()

    def __str__(self) -> str:
        return f"{self.tenant} ({self.get_plan_display()})"


class CreditGrant(models.Model):
    """Prepaid dollars an organization spends before anything is charged."""

    class Kind(models.TextChoices):
        TRIAL = "trial"
        TOP_UP = "top_up", "Top-up"
        GRANT = "grant", "Operator grant"
        ADJUSTMENT = "adjustment", "Operator adjustment"

    tenant = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Positive adds credit; an adjustment may be negative.
    amount = models.DecimalField(**MONEY)
    reason = models.CharField(max_length=300)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # The Stripe Checkout Session that paid for a top-up: one grant per session.
    stripe_reference = models.CharField(max_length=120, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    unscoped = UnscopedManager()
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(kind="trial"),
                name="one_trial_credit_per_organization",
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.kind} {self.amount}"


class Statement(models.Model):
    """A closed month's statement, stored as computed; recomputing gives the same numbers."""

    tenant = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE)
    month = models.DateField()  # the first day of the month
    lines = models.JSONField()  # amounts as decimal strings
    subtotal = models.DecimalField(max_digits=14, decimal_places=2)
    credits_applied = models.DecimalField(max_digits=14, decimal_places=2)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    created_at = models.DateTimeField(default=timezone.now)

    unscoped = UnscopedManager()
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-month"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "month"], name="one_statement_per_month")
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.month:%Y-%m}"


class Invoice(models.Model):
    """A Stripe invoice as its webhooks last described it."""

    tenant = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE)
    stripe_invoice_id = models.CharField(max_length=80, unique=True)
    status = models.CharField(max_length=32)
    amount_due_cents = models.BigIntegerField(default=0)
    amount_paid_cents = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=8, default="usd")
    hosted_invoice_url = models.URLField(max_length=1000, blank=True)
    invoice_pdf = models.URLField(max_length=1000, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    unscoped = UnscopedManager()
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.stripe_invoice_id


class TokenType(models.TextChoices):
    """What a Stripe meter counts: one meter per kind of token."""

    INPUT = "input"
    OUTPUT = "output"
    TRAINING = "training"


class MeterEvent(models.Model):
    """One meter event to send to Stripe (an outbox row), or one to cancel.

    The identifier is derived from the ledger row, the token type and the row's sync
    version, and is fixed before the first attempt: a retry or a replay sends the same
    identifier with the same value, and Stripe counts it once.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        CANCEL_PENDING = "cancel_pending"  # a correction: cancel it with an adjustment
        CANCELLED = "cancelled"

    tenant = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE)
    ledger_entry = models.ForeignKey(
        "metering.LedgerEntry", on_delete=models.PROTECT, related_name="meter_events"
    )
    token_type = models.CharField(max_length=16, choices=TokenType.choices)
    version = models.PositiveIntegerField()
    identifier = models.CharField(max_length=100, unique=True)
    value = models.BigIntegerField()
    timestamp = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    unscoped = UnscopedManager()
    objects = TenantScopedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["ledger_entry", "token_type", "version"], name="meter_event_version_once"
            )
        ]

    def __str__(self) -> str:
        return self.identifier


class WebhookEvent(models.Model):
    """A Stripe event handled: inserted in the transaction of its effect, so each id acts once."""

    event_id = models.CharField(max_length=80, unique=True)
    event_type = models.CharField(max_length=80)
    processed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.event_id} {self.event_type}"


ZERO = Decimal("0")
