"""API key secrets: minting, hashing, and the cached lookup every request makes.

A key reads `tm-<prefix><secret>`. The first PREFIX_LENGTH characters are stored in
the clear to find the row; the whole key is stored only as HMAC-SHA256 under
settings.API_KEY_HASH_SECRET and compared in constant time.
"""

import hashlib
import hmac
from dataclasses import asdict, dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
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
    hashed_key: str
    scopes: tuple[str, ...]
    read_only: bool
    role: str
    expires_at: datetime | None
    revoked: bool
    requests_per_minute: int | None
    tokens_per_minute: int | None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


class KeyRejected(Exception):
    def __init__(self, message: str, *, code: str, status: int = 401):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def _cache_key(prefix: str) -> str:
    return f"apikey:{prefix}"


def forget_key(prefix: str) -> None:
    cache.delete(_cache_key(prefix))


def _load_record(prefix: str) -> KeyRecord | None:
    key = ApiKey.objects.select_related("tenant", "created_by").filter(prefix=prefix).first()
    if key is None:
        return None
    role = Role.ADMIN  # keys an operator minted have no creator and act as an admin
    if key.created_by_id is not None:
        membership = Membership.objects.filter(
            tenant_id=key.tenant_id, user_id=key.created_by_id
        ).first()
        role = membership.role if membership else Role.VIEWER
    return KeyRecord(
        id=key.id,
        public_id=key.public_id,
        tenant_id=key.tenant_id,
        tenant_slug=key.tenant.slug,
        tenant_active=key.tenant.is_active,
        hashed_key=key.hashed_key,
        scopes=tuple(key.scopes),
        read_only=key.read_only,
        role=role,
        expires_at=key.expires_at,
        # A deactivated person's keys stop with them.
        revoked=key.revoked_at is not None
        or (key.created_by is not None and not key.created_by.is_active),
        requests_per_minute=key.requests_per_minute,
        tokens_per_minute=key.tokens_per_minute,
    )


def get_key_record(prefix: str) -> KeyRecord | None:
    cached = cache.get(_cache_key(prefix))
    if cached is not None:
        return KeyRecord(**cached) if cached else None
    record = _load_record(prefix)
    # Unknown prefixes are cached too (as an empty dict), briefly, so a flood of
    # made-up keys does not become a flood of database queries.
    timeout = settings.API_KEY_CACHE_SECONDS if record else 10
    cache.set(_cache_key(prefix), asdict(record) if record else {}, timeout)
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
    return record


def touch_last_used(record: KeyRecord, *, every_seconds: int = 60) -> None:
    """Record use at most once a minute per key, so busy keys do not write on every request."""
    if cache.add(f"apikey-used:{record.id}", 1, every_seconds):
        ApiKey.objects.filter(pk=record.id).update(last_used_at=timezone.now())
