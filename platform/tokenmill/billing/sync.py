"""Ledger -> Stripe meter events, each counted once however often it is retried.

Planning compares every recent ledger row with what its meter events already carry,
per token type. Growth (late usage for the hour, in whatever order it arrives) becomes
a new event for the difference, at the row's next version; a row that shrank (an
operator's correction) has its events cancelled with meter event adjustments and is
sent again in full. The identifier `tm-le<row>-<type>-v<version>` and the value are
stored before the first attempt, so a retry, a crash between send and record, or a
replay sends the same event and Stripe keeps one. Sending backs off on 429 and 5xx.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from tenants.models import Membership, Role
from tokenmill.billing import stripe_api
from tokenmill.billing.models import Account, MeterEvent, Plan, TokenType
from tokenmill.billing.pricing import token_counts
from tokenmill.metering.models import LedgerEntry

log = logging.getLogger(__name__)

#: Stripe takes meter events up to 35 days old; older usage is stamped at this age.
MAX_EVENT_AGE = timedelta(days=34)
#: Attempts of one event within one run before the run moves on (429 and 5xx only).
ATTEMPTS_PER_RUN = 4
#: The first wait after a 429 or 5xx, doubled on each further attempt.
BACKOFF_SECONDS = 0.5

sleep = time.sleep  # tests shorten it


def event_name(token_type: str) -> str:
    return {
        TokenType.INPUT: settings.STRIPE_METER_INPUT,
        TokenType.OUTPUT: settings.STRIPE_METER_OUTPUT,
        TokenType.TRAINING: settings.STRIPE_METER_TRAINING,
    }[token_type]


def identifier_for(entry_id: int, token_type: str, version: int) -> str:
    return f"tm-le{entry_id}-{token_type}-v{version}"


@dataclass
class SyncResult:
    customers: int = 0
    planned: int = 0
    sent: int = 0
    cancelled: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def customer_ensure(*, account: Account) -> str:
    """The organization's Stripe Customer (and metered subscription), created once."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    tenant = account.tenant
    owner = (
        Membership.unscoped.filter(tenant=tenant, role=Role.OWNER)
        .select_related("user")
        .order_by("created_at")
        .first()
    )
    customer_id = stripe_api.customer_create(
        organization_public_id=tenant.public_id,
        name=tenant.name,
        email=owner.user.email if owner else None,
    )
    Account.unscoped.filter(pk=account.pk, stripe_customer_id="").update(
        stripe_customer_id=customer_id
    )
    account.stripe_customer_id = customer_id
    if settings.STRIPE_METERED_PRICES and not account.stripe_subscription_id:
        subscription_id, status = stripe_api.subscription_create(
            customer_id=customer_id, price_ids=settings.STRIPE_METERED_PRICES
        )
        Account.unscoped.filter(pk=account.pk).update(
            stripe_subscription_id=subscription_id, subscription_status=status
        )
        account.stripe_subscription_id, account.subscription_status = subscription_id, status
    return customer_id


def customers_ensure(result: SyncResult) -> None:
    """Paying plans get their Customer before their usage is metered."""
    accounts = Account.unscoped.select_related("tenant").filter(stripe_customer_id="")
    for account in accounts.exclude(plan=Plan.FREE):
        try:
            customer_ensure(account=account)
            result.customers += 1
        except (stripe_api.StripeRetryable, stripe_api.StripeRefused) as error:
            result.failed += 1
            result.errors.append(f"customer for {account.tenant.slug}: {error}")


def meter_events_plan(*, now: datetime | None = None) -> int:
    """Record the meter events that bring Stripe level with the ledger; returns how many."""
    now = now or timezone.now()
    customers = Account.unscoped.exclude(stripe_customer_id="").values_list("tenant_id", flat=True)
    entries = LedgerEntry.unscoped.filter(
        tenant_id__in=list(customers), hour__gte=now - MAX_EVENT_AGE - timedelta(days=1)
    ).order_by("pk")
    planned = 0
    for entry in entries.iterator():
        planned += _plan_entry(entry, now)
    return planned


def _plan_entry(entry: LedgerEntry, now: datetime) -> int:
    wanted = token_counts(
        kind=entry.kind,
        prompt_tokens=entry.prompt_tokens,
        completion_tokens=entry.completion_tokens,
    )
    counted = {
        row["token_type"]: row
        for row in MeterEvent.unscoped.filter(ledger_entry=entry)
        .exclude(status__in=[MeterEvent.Status.CANCEL_PENDING, MeterEvent.Status.CANCELLED])
        .values("token_type")
        .annotate(value=Sum("value"))
    }
    planned = 0
    for token_type, tokens in wanted.items():
        have = counted.get(token_type, {}).get("value") or 0
        if tokens == have:
            continue
        with transaction.atomic():
            if tokens < have:  # a correction: cancel what was sent, send the whole again
                MeterEvent.unscoped.filter(ledger_entry=entry, token_type=token_type).exclude(
                    status=MeterEvent.Status.CANCELLED
                ).update(status=MeterEvent.Status.CANCEL_PENDING)
                value = tokens
            else:
                value = tokens - have
            if value == 0:
                continue
            latest = (
                MeterEvent.unscoped.filter(ledger_entry=entry, token_type=token_type)
                .order_by("-version")
                .values_list("version", flat=True)
                .first()
            ) or 0
            try:
                with transaction.atomic():
                    MeterEvent.unscoped.create(
                        tenant_id=entry.tenant_id,
                        ledger_entry=entry,
                        token_type=token_type,
                        version=latest + 1,
                        identifier=identifier_for(entry.pk, token_type, latest + 1),
                        value=value,
                        timestamp=max(entry.hour, now - MAX_EVENT_AGE),
                    )
            except IntegrityError:
                continue  # a concurrent run planned this version: it stands
            planned += 1
    return planned


def _with_backoff(send) -> None:
    for attempt in range(ATTEMPTS_PER_RUN):
        try:
            send()
            return
        except stripe_api.StripeRetryable:
            if attempt == ATTEMPTS_PER_RUN - 1:
                raise
            sleep(BACKOFF_SECONDS * 2**attempt)


def meter_events_send(*, batch: int | None = None) -> SyncResult:
    """Send (or cancel) the events waiting, oldest first, a batch at a time."""
    result = SyncResult()
    batch = batch or settings.BILLING_SYNC_BATCH
    waiting = MeterEvent.unscoped.filter(
        status__in=[MeterEvent.Status.PENDING, MeterEvent.Status.CANCEL_PENDING]
    ).select_related("ledger_entry")
    customers = dict(
        Account.unscoped.exclude(stripe_customer_id="").values_list(
            "tenant_id", "stripe_customer_id"
        )
    )
    # Cancellations first, so a row's corrected total never counts twice.
    for event in waiting.order_by("-status", "pk")[:batch]:
        cancelling = event.status == MeterEvent.Status.CANCEL_PENDING
        if cancelling:
            send = _cancel_sender(event)
        else:
            send = _event_sender(event, customers[event.tenant_id])
        try:
            _with_backoff(send)
        except (stripe_api.StripeRetryable, stripe_api.StripeRefused) as error:
            MeterEvent.unscoped.filter(pk=event.pk).update(
                attempts=event.attempts + 1, last_error=str(error)[:500]
            )
            result.failed += 1
            result.errors.append(f"{event.identifier}: {error}")
            continue
        done = MeterEvent.Status.CANCELLED if cancelling else MeterEvent.Status.SENT
        MeterEvent.unscoped.filter(pk=event.pk, status=event.status).update(
            status=done, sent_at=timezone.now(), attempts=event.attempts + 1, last_error=""
        )
        if cancelling:
            result.cancelled += 1
        else:
            result.sent += 1
    return result


def _event_sender(event: MeterEvent, customer_id: str):
    def send() -> None:
        stripe_api.meter_event_create(
            event_name=event_name(event.token_type),
            customer_id=customer_id,
            value=event.value,
            identifier=event.identifier,
            timestamp=event.timestamp,
            model=event.ledger_entry.model,
        )

    return send


def _cancel_sender(event: MeterEvent):
    def send() -> None:
        if event.sent_at is None and event.attempts == 0:
            return  # never tried: it cannot have reached Stripe
        stripe_api.meter_event_cancel(
            event_name=event_name(event.token_type), identifier=event.identifier
        )

    return send


def sync_run() -> SyncResult:
    """One pass: customers for paying plans, then plan and send meter events."""
    if not stripe_api.configured():
        return SyncResult()
    result = SyncResult()
    customers_ensure(result)
    result.planned = meter_events_plan()
    sent = meter_events_send()
    result.sent, result.cancelled = sent.sent, sent.cancelled
    result.failed += sent.failed
    result.errors += sent.errors
    for error in result.errors[:20]:
        log.warning("billing sync: %s", error)
    return result


def sync_status() -> dict:
    """What the console shows: events waiting, the oldest one's age, failures."""
    waiting = MeterEvent.unscoped.filter(
        status__in=[MeterEvent.Status.PENDING, MeterEvent.Status.CANCEL_PENDING]
    ).aggregate(
        count=Count("pk"),
        oldest=Min("created_at"),
        failing=Count("pk", filter=Q(attempts__gt=0)),
    )
    oldest = waiting["oldest"]
    return {
        "configured": stripe_api.configured(),
        "waiting": waiting["count"],
        "failing": waiting["failing"],
        "lag_seconds": int((timezone.now() - oldest).total_seconds()) if oldest else 0,
        "sent": MeterEvent.unscoped.filter(status=MeterEvent.Status.SENT).count(),
    }


def failed_events_retry(*, ids: list[int] | None = None) -> int:
    """The console's retry: the failing events' (or those of `ids`) attempts start again."""
    failing = MeterEvent.unscoped.filter(
        status__in=[MeterEvent.Status.PENDING, MeterEvent.Status.CANCEL_PENDING],
        attempts__gt=0,
    )
    if ids is not None:
        failing = failing.filter(pk__in=ids)
    return failing.update(attempts=0, last_error="")
