"""Who is calling: an API key (the /v1 endpoints) or a dashboard session (the playground).

Keys go through tenants.keys' cached lookup (`authenticate_key`), memoized per process
for a fraction of a second, so a request neither hashes against the database nor
waits on the cache; a revoked key or a suspended organization is refused within
GATEWAY_LOCAL_CACHE_SECONDS of its cache entry being cleared.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from tenants.keys import (
    KeyRecord,
    KeyRejected,
    authenticate_key,
    get_key_record,
    record_check,
    touch_last_used,
)
from tenants.models import ROLE_RANK, ApiKeyScope, Membership, Organization, Role
from tokenmill.gateway.errors import GatewayError
from tokenmill.gateway.memo import LocalMemo


@dataclass(frozen=True)
class Caller:
    tenant_id: int
    tenant_slug: str
    key_id: int | None = None  # None for a dashboard session
    key_public_id: str = ""
    user_id: int | None = None
    expires_at: datetime | None = None
    # The key's and the organization's limits per minute, enforced at admission.
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    org_requests_per_minute: int = 0
    org_tokens_per_minute: int = 0
    # A Batch API line: metered as kind `batch` at the batch price, free of the per-minute
    # rate limits (budgets and credits still apply), and sent at a lower vLLM priority.
    batch: bool = False


_memo = LocalMemo()

BILLING_HOLD = GatewayError(
    "Inference is paused for this organization because a payment failed. Pay the open "
    "invoice (or update the payment method) on the dashboard's billing page to resume.",
    status=402,
    code="payment_required",
)

MISSING_KEY = (
    "You didn't provide an API key. Provide it in an Authorization header using "
    "Bearer auth (Authorization: Bearer YOUR_KEY)."
)


def _caller_for(token: str) -> Caller | GatewayError:
    try:
        record = authenticate_key(token)
    except KeyRejected as rejected:
        return GatewayError(
            rejected.message, status=rejected.status, code=rejected.code, param=None
        )
    refused = _refusal(record)
    if refused is not None:
        return refused
    touch_last_used(record)  # writes at most once a minute per key, and only on a memo miss
    return _caller_of(record)


def batch_caller(key_prefix: str) -> Caller | GatewayError:
    """The caller a batch's lines run as: its key, asked again (revoked, expired, scopes,
    role, billing hold) as a live request would be, without the key's secret."""
    record = get_key_record(key_prefix)
    if record is None:
        return GatewayError("This API key has been deleted.", status=401, code="invalid_api_key")
    try:
        record_check(record)
    except KeyRejected as rejected:
        return GatewayError(rejected.message, status=rejected.status, code=rejected.code)
    return _refusal(record) or _caller_of(record, batch=True)


def batch_member_caller(*, tenant_id: int, user_id: int) -> Caller | GatewayError:
    """The caller a batch created on the dashboard runs as: its member, asked again
    (still a member and above, organization active and not on billing hold)."""
    tenant = Organization.objects.get(pk=tenant_id)
    membership = (
        Membership.objects.for_tenant(tenant).select_related("user").filter(user_id=user_id).first()
    )
    if membership is None or not membership.user.is_active:
        return GatewayError(
            "The member who created this batch is no longer in the organization.",
            status=403,
            code="insufficient_role",
        )
    return member_caller(
        membership,
        role_refusal="The batch's creator has the {role} role; inference needs member or above.",
        batch=True,
    )


def member_caller(
    membership: Membership, *, role_refusal: str, batch: bool = False
) -> Caller | GatewayError:
    """A dashboard member as a caller (the playground, a batch created there), or why not:
    a suspended organization, a billing hold, or a role below member (`role_refusal`,
    with `{role}`, says so in the caller's words)."""
    tenant = membership.tenant
    if not tenant.is_active:
        return GatewayError(
            f"The organization {tenant.slug!r} is suspended. Contact support.",
            status=403,
            code="organization_suspended",
        )
    if tenant.billing_hold:
        return BILLING_HOLD.copy()
    if not membership.has_role(Role.MEMBER):
        return GatewayError(
            role_refusal.format(role=membership.role), status=403, code="insufficient_role"
        )
    return Caller(
        tenant_id=tenant.pk,
        tenant_slug=tenant.slug,
        user_id=membership.user_id,
        org_requests_per_minute=tenant.effective_requests_per_minute,
        org_tokens_per_minute=tenant.effective_tokens_per_minute,
        batch=batch,
    )


def _refusal(record: KeyRecord) -> GatewayError | None:
    if not record.allows(ApiKeyScope.MODELS):
        return GatewayError(
            "This API key does not have the 'models' scope needed for inference.",
            status=403,
            code="missing_scope",
        )
    if record.read_only:
        return GatewayError(
            "This API key is read-only; inference needs a key that can write.",
            status=403,
            code="read_only_key",
        )
    if ROLE_RANK[Role(record.role)] < ROLE_RANK[Role.MEMBER]:
        return GatewayError(
            f"The API key's creator has the {record.role} role; inference needs member or above.",
            status=403,
            code="insufficient_role",
        )
    if record.tenant_billing_hold:
        return BILLING_HOLD.copy()
    return None


def _caller_of(record: KeyRecord, *, batch: bool = False) -> Caller:
    return Caller(
        tenant_id=record.tenant_id,
        tenant_slug=record.tenant_slug,
        key_id=record.id,
        key_public_id=record.public_id,
        expires_at=record.expires_at,
        requests_per_minute=record.requests_per_minute,
        tokens_per_minute=record.tokens_per_minute,
        org_requests_per_minute=record.org_requests_per_minute,
        org_tokens_per_minute=record.org_tokens_per_minute,
        batch=batch,
    )


def bearer_token(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def caller_from_authorization(header: str | None) -> Caller:
    if not header:
        raise GatewayError(MISSING_KEY, status=401, code="missing_api_key")
    token = bearer_token(header)
    if token is None:
        raise GatewayError(
            "The Authorization header must read 'Bearer YOUR_KEY'.",
            status=401,
            code="invalid_api_key",
        )
    memo_key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
    found = await _memo.get(memo_key, lambda: _caller_for(token))
    if isinstance(found, GatewayError):
        raise found.copy()  # a fresh exception each time: a shared one would pile up tracebacks
    if found.expires_at is not None and found.expires_at <= timezone.now():
        raise GatewayError("This API key has expired.", status=401, code="invalid_api_key")
    return found


def forget_local() -> None:
    _memo.clear()
