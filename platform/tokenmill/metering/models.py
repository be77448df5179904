"""Reservation counters (the embedded default), usage events, the usage ledger.

Usage is exact integer token counts; a budget's counter holds integer micro-units of money
(billing prices the ledger and sets the caps). Nothing here is a float.
"""

from django.db import models
from django.utils import timezone

from tenants.scoping import TenantScopedManager, UnscopedManager


class Kind(models.TextChoices):
    CHAT = "chat"
    COMPLETION = "completion"
    EMBEDDING = "embedding"
    TRAINING = "training"
    BATCH = "batch"


class ReservationCounter(models.Model):
    """One counter of one reservation scope in one window, without Redis: what
    "rl:key:12:29392811:tokens" holds there (see tokenmill.metering.limits).

    Reservations are one conditional UPDATE per counter (`value + cost <= cap`) inside
    one transaction, so concurrent requests can never take more than the cap.
    """

    key = models.CharField(max_length=200, unique=True)
    value = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key} = {self.value}"


class UsageEvent(models.Model):
    """One request's usage, in the embedded default (with Redis: the stream holds it)."""

    event_id = models.CharField(max_length=80, unique=True)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    aggregated = models.BooleanField(default=False, db_index=True)

    def __str__(self) -> str:
        return self.event_id


class InflightRequest(models.Model):
    """An admitted request not yet settled, in the embedded default: if its gateway dies,
    the sweeper turns it into an event with the last usage it saw."""

    request_id = models.CharField(max_length=80, unique=True)
    payload = models.JSONField()
    started_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.request_id


class ConsumedEvent(models.Model):
    """Every event the ledger has counted: the unique id makes a replay count once."""

    event_id = models.CharField(max_length=80, unique=True)
    consumed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.event_id


class LedgerEntry(models.Model):
    """Exact usage per organization, key, model, kind and hour."""

    tenant = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE)
    key_public_id = models.CharField(max_length=40, blank=True)  # "" for the dashboard
    model = models.CharField(max_length=200)  # as called: a base model or an ft: model
    base_model = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    hour = models.DateTimeField()
    requests = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)

    unscoped = UnscopedManager()
    objects = TenantScopedManager()

    class Meta:
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "key_public_id", "model", "kind", "hour"],
                name="ledger_entry_once",
            )
        ]
        indexes = [models.Index(fields=["tenant", "hour"])]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.model} {self.kind} {self.hour:%Y-%m-%d %H}:00"
