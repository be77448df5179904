from datetime import datetime
from functools import partial

from django.conf import settings
from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from tenants.ids import public_id
from tenants.scoping import TenantScopedManager, UnscopedManager


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **fields) -> "User":
        if not email:
            raise ValueError("An e-mail address is required")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields) -> "User":
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields) -> "User":
        fields.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **fields)


class User(AbstractUser):
    """A person. Signs in with an e-mail address; belongs to organizations through memberships."""

    username = None
    email = models.EmailField("e-mail address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    def __str__(self) -> str:
        return self.email


class Organization(models.Model):
    """A tenant. Every tenant-owned row in the platform points here."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    public_id = models.CharField(max_length=40, unique=True, default=partial(public_id, "org-"))
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=40, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    suspended_reason = models.CharField(max_length=200, blank=True)
    # Set by billing when a payment failure outlasts its grace period: inference is
    # refused until the invoice is paid; the rest of the organization keeps working.
    billing_hold = models.BooleanField(default=False)
    # Quotas; None means the platform default from settings.
    storage_quota_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    max_concurrent_jobs = models.PositiveIntegerField(null=True, blank=True)
    # Rate limits per minute, set by operators; None means the plan default from
    # settings (ORG_REQUESTS_PER_MINUTE, ORG_TOKENS_PER_MINUTE), 0 means no limit.
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def effective_requests_per_minute(self) -> int:
        if self.requests_per_minute is not None:
            return self.requests_per_minute
        return settings.ORG_REQUESTS_PER_MINUTE

    @property
    def effective_tokens_per_minute(self) -> int:
        if self.tokens_per_minute is not None:
            return self.tokens_per_minute
        return settings.ORG_TOKENS_PER_MINUTE


class Role(models.TextChoices):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


# What each role may do. Roles are ordered: each one can do what those below it can.
ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Membership(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=partial(public_id, "mem_"))
    tenant = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    unscoped = UnscopedManager()  # first, so it is Django's default manager
    objects = TenantScopedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_user")
        ]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"

    def has_role(self, at_least: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(at_least)]


class Invitation(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        REVOKED = "revoked"

    public_id = models.CharField(max_length=40, unique=True, default=partial(public_id, "inv-"))
    tenant = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    # Only a hash of the token is kept; the token itself travels in the e-mail.
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)

    unscoped = UnscopedManager()  # first, so it is Django's default manager
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                "tenant",
                Lower("email"),
                condition=models.Q(status="pending"),
                name="one_pending_invitation_per_email",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.tenant}"

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.expires_at


class ApiKeyScope(models.TextChoices):
    MODELS = "models", "Models and inference"
    FILES = "files", "Files"
    FINE_TUNING = "fine_tuning", "Fine-tuning"
    ORGANIZATION = "organization", "Organization, members and keys"


class ApiKey(models.Model):
    """A secret a program uses to act for an organization.

    Stored as a lookup prefix plus an HMAC-SHA256 of the whole key; the plaintext
    exists only in the response that created it.
    """

    public_id = models.CharField(max_length=40, unique=True, default=partial(public_id, "key_"))
    tenant = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_key = models.CharField(max_length=64)
    last_four = models.CharField(max_length=4)
    scopes = models.JSONField(default=list)
    read_only = models.BooleanField(default=False)
    # SET_NULL only after a pre_delete signal revoked the key: a key whose creator is gone
    # is dead, never an operator's. Operators' keys say so here; no NULL stands for it.
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    minted_by_operator = models.BooleanField(
        default=False,
        help_text="Minted from the console or a management command; acts as an admin.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)

    unscoped = UnscopedManager()  # first, so it is Django's default manager
    objects = TenantScopedManager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.redacted})"

    @property
    def redacted(self) -> str:
        return f"{self.prefix}…{self.last_four}"

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"
