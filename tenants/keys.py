"""API key secrets: minting, hashing, and the cached lookup every request makes.

A key reads `tm-<prefix><secret>`. The first PREFIX_LENGTH characters are stored in
the clear to find the row; the whole key is stored only as HMAC-SHA256 under
settings.API_KEY_HASH_SECRET and compared in constant time.
"""

import hashlib
import hmac
from dataclasses import asdict, dataclass, fields
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from tenants.ids import random_token
from tenants.models import ApiKey, Membership, Role

KEY_MARKER = "tm-"
PREFIX_LENGTH = len(KEY_MARKER) + 9
SECRET_LENGTH = 40


def mint_key() -> str:
    return KEY_MARKER + random_token(SECRET_LENGTH)


def key_prefix(plaintext: str) -> str:
    return plaintext[:PREFIX_LENGTH]


def hash_key(plaintext: str) -> str:
    secret = settings.API_KEY_HASH_SECRET.encode()
    return hmac.new(secret, plaintext.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """What a request needs to know about its key; cached, so no database read per request."""

    id: int
    public_id: str
    tenant_id: int
    tenant_slug: str
    tenant_active: bool
    tenant_billing_hold: bool
    hashed_key: str
    scopes: tuple[str, ...]
    read_only: bool
    role: str
    expires_at: datetime | None
    revoked: bool
    requests_per_minute: int | None
    tokens_per_minute: int | None
    # The organization's limits, its own or its plan's default (0: none).
    org_requests_per_minute: int
    org_tokens_per_minute: int

    #: The Organization fields a record carries (as tenant_slug and tenant_active): saving
    #: any other field of an organization leaves its cached records alone.
    ORGANIZATION_FIELDS = frozenset({"slug", "status", "billing_hold"})

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


class KeyRejected(Exception):
    def __init__(self, message: str, *, code: str, status: int = 401):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def _describe_record(record_type: type = KeyRecord) -> str:
    described = ",".join(f"{field.name}:{field.type}" for field in fields(record_type))
    return hashlib.sha256(described.encode()).hexdigest()[:10]


#: In every cache key, derived from KeyRecord's fields: a deploy that adds, drops or
#: retypes one reads none of the records an older release cached.
RECORD_SCHEMA = _describe_record()


def record_cache_key(prefix: str) -> str:
    return f"apikey:{RECORD_SCHEMA}:{prefix}"


def _generation_cache_key(prefix: str) -> str:
    return f"apikey-generation:{prefix}"


def forget_key(prefix: str) -> None:
    """Drop the cached record and start a new generation, so a record that a request read
    from the database before this moment is never trusted, even if it is stored after."""
    cache.set(_generation_cache_key(prefix), random_token(12), None)
    cache.delete(record_cache_key(prefix))


def forget_keys(prefixes: list[str]) -> None:
    """Forget now, and again once the current transaction commits: a request between the
    two may have cached the state the transaction is about to change."""

    def forget() -> None:
        for prefix in prefixes:
            forget_key(prefix)

    forget()
    transaction.on_commit(forget)


def _load_record(prefix: str) -> KeyRecord | None:
    key = ApiKey.unscoped.select_related("tenant", "created_by").filter(prefix=prefix).first()
    if key is None:
        return None
    if key.minted_by_operator:
        role, creator_gone = Role.ADMIN, False  # an operator's key acts as an admin
    elif key.created_by is None:
        role, creator_gone = Role.VIEWER, True  # its creator was deleted: it stopped with them
    else:
        membership = Membership.unscoped.filter(
            tenant_id=key.tenant_id, user_id=key.created_by_id
        ).first()
        # A key acts for its creator inside the organization: once they are no longer a
        # member (removed by whatever path) or deactivated, it stops with them.
        role = membership.role if membership else Role.VIEWER
        creator_gone = membership is None or not key.created_by.is_active
    return KeyRecord(
        id=key.id,
        public_id=key.public_id,
        tenant_id=key.tenant_id,
        tenant_slug=key.tenant.slug,
        tenant_active=key.tenant.is_active,
        tenant_billing_hold=key.tenant.billing_hold,
        hashed_key=key.hashed_key,
        scopes=tuple(key.scopes),
        read_only=key.read_only,
        role=role,
        expires_at=key.expires_at,
        revoked=key.revoked_at is not None or creator_gone,
        requests_per_minute=key.requests_per_minute,
        tokens_per_minute=key.tokens_per_minute,
        org_requests_per_minute=key.tenant.effective_requests_per_minute,
        org_tokens_per_minute=key.tenant.effective_tokens_per_minute,
    )


def get_key_record(prefix: str) -> KeyRecord | None:
    """The record for a prefix: one cache round trip when cached, no database read."""
    record_key, generation_key = record_cache_key(prefix), _generation_cache_key(prefix)
    cached = cache.get_many([record_key, generation_key])
    generation = cached.get(generation_key)
    entry = cached.get(record_key)
    if isinstance(entry, dict) and entry.get("generation") == generation:
        try:
            return KeyRecord(**entry["record"]) if entry["record"] else None
        except (KeyError, TypeError):
            pass  # not a record this release can read: load it again
    # The generation read above was current before the database read below, so a change
    # that commits in between starts a newer one and this entry is never used.
    record = _load_record(prefix)
    # Unknown prefixes are cached too (as an empty record), briefly, so a flood of
    # made-up keys does not become a flood of database queries.
    timeout = settings.API_KEY_CACHE_SECONDS if record else 10
    entry = {"generation": generation, "record": asdict(record) if record else {}}
    cache.set(record_key, entry, timeout)
    return record


def redact(plaintext: str) -> str:
    return f"{plaintext[:PREFIX_LENGTH]}***{plaintext[-4:]}" if len(plaintext) > 16 else "***"


def authenticate_key(plaintext: str) -> KeyRecord:
    """Return the record for a presented key, or raise KeyRejected saying why."""
    record = None
    if plaintext.startswith(KEY_MARKER) and len(plaintext) == len(KEY_MARKER) + SECRET_LENGTH:
        record = get_key_record(key_prefix(plaintext))
    if record is None or not hmac.compare_digest(record.hashed_key, hash_key(plaintext)):
        raise KeyRejected(
            f"Incorrect API key provided: {redact(plaintext)}. "
            "You can find and create API keys in the Tokenmill dashboard.",
            code="invalid_api_key",
        )
    record_check(record)
    return record


def record_check(record: KeyRecord) -> None:
    """Raise KeyRejected when a key that was genuine is no longer usable: revoked, expired,
    or its organization suspended. (Work a key queued, such as a batch, asks again.)"""
    if record.revoked:
        raise KeyRejected("This API key has been revoked.", code="invalid_api_key")
    if record.expires_at and record.expires_at <= timezone.now():
        raise KeyRejected("This API key has expired.", code="invalid_api_key")
    if not record.tenant_active:
        raise KeyRejected(
            f"The organization {record.tenant_slug!r} is suspended. Contact support.",
            code="organization_suspended",
            status=403,
        )


def touch_last_used(record: KeyRecord, *, every_seconds: int = 60) -> None:
    """Record use at most once a minute per key, so busy keys do not write on every request."""
    if cache.add(f"apikey-used:{record.id}", 1, every_seconds):
        ApiKey.unscoped.filter(pk=record.id).update(last_used_at=timezone.now())
