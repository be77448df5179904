"""Ledger rows written directly, as the metering task leaves them."""

from datetime import datetime

from tokenmill.billing.accounts import account_for
from tokenmill.billing.models import CreditGrant
from tokenmill.metering.models import LedgerEntry


def ledger_row(
    tenant,
    *,
    hour: datetime,
    model: str = "tiny-chat",
    base_model: str | None = None,
    kind: str = "chat",
    key: str = "",
    prompt: int = 0,
    completion: int = 0,
    requests: int = 1,
) -> LedgerEntry:
    return LedgerEntry.objects.create(
        tenant=tenant,
        key_public_id=key,
        model=model,
        base_model=base_model or model,
        kind=kind,
        hour=hour.replace(minute=0, second=0, microsecond=0),
        requests=requests,
        prompt_tokens=prompt,
        completion_tokens=completion,
    )


def trial_granted_at(tenant, when: datetime) -> None:
    """Open the organization's account and move its trial credit to `when`."""
    account_for(tenant=tenant)
    CreditGrant.unscoped.filter(tenant=tenant, kind="trial").update(created_at=when)
