"""Writes on organizations, members, invitations and API keys.

Every function takes the tenant (and the acting membership, where a role decides)
as keyword arguments and raises TenantError / TenantPermissionError for anything
the caller can get wrong.
"""

import hashlib
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from tenants import keys
from tenants.errors import TenantError, TenantPermissionError
from tenants.ids import random_token
from tenants.models import (
    ROLE_RANK,
    ApiKey,
    ApiKeyScope,
    Invitation,
    Membership,
    Organization,
    Role,
    User,
)

ALL_SCOPES = [scope.value for scope in ApiKeyScope]


def _require_role(actor: Membership | None, at_least: str, action: str) -> None:
    # actor None means an operator (console, management command): allowed.
    if actor is not None and not actor.has_role(at_least):
        raise TenantPermissionError(
            f"Your role ({actor.role}) cannot {action}; it needs {at_least} or above.",
            code="insufficient_role",
        )


def _acting_user(actor: Membership | None) -> User | None:
    """The person acting; None for operators and for keys an operator minted."""
    return actor.user if actor is not None and actor.user_id else None


def _slug_candidates(name: str):
    """Slugs for a name that look free: acme, acme-2, acme-3... The database decides."""
    base = slugify(name)[:32].strip("-") or "org"
    similar = Organization.objects.filter(Q(slug=base) | Q(slug__startswith=f"{base}-"))
    taken = set(similar.values_list("slug", flat=True))
    for candidate in [base, *(f"{base}-{n}" for n in range(2, 1000))]:
        if candidate not in taken:
            yield candidate
    yield f"{base}-{random_token(6).lower()}"


def organization_create(*, name: str, owner: User, slug: str | None = None) -> Organization:
    """Create an organization owned by `owner`. A slug is unique: the database says
    whether it is free (no check-then-act), so concurrent creations cannot both win."""
    name = name.strip()
    if not name:
        raise TenantError("The organization needs a name.", code="invalid_name", param="name")
    if slug is not None:
        slug = slug.strip().lower()
        if slug != slugify(slug) or not slug:
            raise TenantError(
                f"{slug!r} is not a valid slug: use lowercase letters, digits and hyphens.",
                code="invalid_slug",
                param="slug",
            )
    for candidate in [slug] if slug is not None else _slug_candidates(name):
        try:
            with transaction.atomic():
                organization = Organization.objects.create(name=name, slug=candidate)
                Membership.objects.create(tenant=organization, user=owner, role=Role.OWNER)
            return organization
        except IntegrityError:
            if not Organization.objects.filter(slug=candidate).exists():
                raise  # not the slug: a real error
    if slug is None:
        raise RuntimeError(f"no free slug for {name!r}")
    raise TenantError(f"The slug {slug!r} is taken.", code="slug_taken", param="slug")


def user_sign_up(
    *, email: str, name: str, password: str, organization_name: str | None
) -> tuple[User, Organization | None]:
    """Create a person, and the organization they own when a name is given.

    Nothing is written unless both succeed: a bad organization name leaves no user behind.
    """
    first_name, _, last_name = " ".join(name.split()).partition(" ")
    with transaction.atomic():
        try:
            with transaction.atomic():
                user = User.objects.create_user(
                    email=email, password=password, first_name=first_name, last_name=last_name
                )
        except IntegrityError:  # a concurrent sign-up with the same address won
            raise TenantError(
                "An account with this e-mail address already exists.",
                code="email_taken",
                param="email",
            ) from None
        organization = None
        if organization_name is not None:
            organization = organization_create(name=organization_name, owner=user)
    return user, organization


def organization_update(
    *, tenant: Organization, actor: Membership | None, name: str
) -> Organization:
    _require_role(actor, Role.ADMIN, "rename the organization")
    name = name.strip()
    if not name:
        raise TenantError("The organization needs a name.", code="invalid_name", param="name")
    tenant.name = name
    tenant.save(update_fields=["name"])
    return tenant


def _forget_tenant_keys(tenant: Organization) -> None:
    keys.forget_keys(list(ApiKey.objects.for_tenant(tenant).values_list("prefix", flat=True)))


def organization_limits_changed(*, tenant: Organization) -> None:
    """After an operator changes the organization's rate limits: cached keys carry them."""
    _forget_tenant_keys(tenant)


def organization_set_status(*, tenant: Organization, status: str, reason: str = "") -> Organization:
    """Suspend or reactivate; an operator action. Keys stop working within a second."""
    if status not in Organization.Status.values:
        raise TenantError(f"Unknown status {status!r}.", code="invalid_status", param="status")
    tenant.status = status
    tenant.suspended_reason = reason if status == Organization.Status.SUSPENDED else ""
    tenant.save(update_fields=["status", "suspended_reason"])
    _forget_tenant_keys(tenant)
    return tenant


def organization_billing_hold_set(*, organization: Organization, held: bool) -> Organization:
    """Pause (or resume) inference for an unpaid invoice; keys see it within a second."""
    Organization.objects.filter(pk=organization.pk).update(billing_hold=held)
    organization.billing_hold = held
    _forget_tenant_keys(organization)
    return organization


# --- invitations ---------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _validate_role(role: str) -> Role:
    if role not in Role.values:
        raise TenantError(
            f"Unknown role {role!r}; use one of {', '.join(Role.values)}.",
            code="invalid_role",
            param="role",
        )
    return Role(role)


def member_invite(
    *, tenant: Organization, actor: Membership | None, email: str, role: str = Role.MEMBER
) -> tuple[Invitation, str]:
    """Invite someone by e-mail. Returns the invitation and the token that the e-mail carries."""
    _require_role(actor, Role.ADMIN, "invite members")
    role = _validate_role(role)
    if role == Role.OWNER:
        _require_role(actor, Role.OWNER, "invite an owner")
    email = User.objects.normalize_email(email.strip()).lower()
    if "@" not in email:
        raise TenantError(
            f"{email!r} is not an e-mail address.", code="invalid_email", param="email"
        )
    if Membership.objects.for_tenant(tenant).filter(user__email__iexact=email).exists():
        raise TenantError(f"{email} is already a member.", code="already_member", param="email")
    token = random_token(40)
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                tenant=tenant,
                email=email,
                role=role,
                token_hash=_token_hash(token),
                invited_by=_acting_user(actor),
                expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
            )
    except IntegrityError:
        raise TenantError(
            f"{email} already has a pending invitation.", code="already_invited", param="email"
        ) from None
    link = f"{settings.PUBLIC_URL}/invitations/{token}/"
    inviter = _acting_user(actor).email if _acting_user(actor) else "The Tokenmill team"
    transaction.on_commit(
        lambda: send_mail(
            subject=f"You are invited to {tenant.name} on Tokenmill",
            message=(
                f"{inviter} invited you to join {tenant.name} on Tokenmill as {role.label.lower()}.\n\n"
                f"Accept the invitation: {link}\n\n"
                f"The link expires in {settings.INVITATION_TTL_DAYS} days."
            ),
            from_email=None,
            recipient_list=[email],
        )
    )
    return invitation, token


def invitation_get_by_token(token: str) -> Invitation:
    invitation = (
        Invitation.unscoped.select_related("tenant").filter(token_hash=_token_hash(token)).first()
    )
    if invitation is None or invitation.status != Invitation.Status.PENDING:
        raise TenantError("This invitation link is not valid.", code="invalid_invitation")
    if invitation.is_expired():
        raise TenantError(
            "This invitation has expired; ask for a new one.", code="invitation_expired"
        )
    return invitation


def invitation_accept(*, token: str, user: User) -> Membership:
    with transaction.atomic():
        invitation = invitation_get_by_token(token)
        invitation = Invitation.unscoped.select_for_update().get(pk=invitation.pk)
        if invitation.status != Invitation.Status.PENDING:
            raise TenantError("This invitation link is not valid.", code="invalid_invitation")
        if invitation.email.lower() != user.email.lower():
            raise TenantError(
                f"This invitation is for {invitation.email}; sign in with that address to accept it.",
                code="invitation_email_mismatch",
            )
        membership, _ = Membership.unscoped.get_or_create(
            tenant=invitation.tenant, user=user, defaults={"role": invitation.role}
        )
        invitation.status = Invitation.Status.ACCEPTED
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["status", "accepted_at"])
    return membership


def invitation_revoke(
    *, tenant: Organization, actor: Membership | None, invitation: Invitation
) -> None:
    _require_role(actor, Role.ADMIN, "revoke invitations")
    updated = (
        Invitation.objects.for_tenant(tenant)
        .filter(pk=invitation.pk, status=Invitation.Status.PENDING)
        .update(status=Invitation.Status.REVOKED)
    )
    if not updated:
        raise TenantError(
            f"The invitation is already {invitation.status}.", code="invitation_not_pending"
        )


# --- members -------------------------------------------------------------------------


def _owner_count(tenant: Organization) -> int:
    return Membership.objects.for_tenant(tenant).filter(role=Role.OWNER).count()


def _forget_member_keys(membership: Membership) -> None:
    api_keys = ApiKey.objects.for_tenant(membership.tenant).filter(created_by=membership.user)
    keys.forget_keys(list(api_keys.values_list("prefix", flat=True)))


def member_change_role(
    *, tenant: Organization, actor: Membership | None, membership: Membership, role: str
) -> Membership:
    _require_role(actor, Role.ADMIN, "change roles")
    role = _validate_role(role)
    if Role.OWNER in (role, membership.role):
        _require_role(actor, Role.OWNER, "grant or take away the owner role")
    with transaction.atomic():
        # Lock the owners so two concurrent demotions cannot both pass the check.
        list(Membership.objects.for_tenant(tenant).filter(role=Role.OWNER).select_for_update())
        membership.refresh_from_db()
        if membership.role == Role.OWNER and role != Role.OWNER and _owner_count(tenant) <= 1:
            raise TenantError(
                "The last owner cannot be demoted; make someone else an owner first.",
                code="last_owner",
                param="role",
            )
        membership.role = role
        membership.save(update_fields=["role"])
        _forget_member_keys(membership)
    return membership


def member_remove(
    *, tenant: Organization, actor: Membership | None, membership: Membership
) -> None:
    """Remove a member. Their API keys are revoked with them."""
    if actor is None or actor.pk != membership.pk:  # leaving needs no role
        _require_role(actor, Role.ADMIN, "remove members")
        if membership.role == Role.OWNER:
            _require_role(actor, Role.OWNER, "remove an owner")
    with transaction.atomic():
        list(Membership.objects.for_tenant(tenant).filter(role=Role.OWNER).select_for_update())
        if membership.role == Role.OWNER and _owner_count(tenant) <= 1:
            raise TenantError(
                "The last owner cannot be removed; make someone else an owner first.",
                code="last_owner",
            )
        ApiKey.objects.for_tenant(tenant).filter(
            created_by=membership.user, revoked_at=None
        ).update(revoked_at=timezone.now())
        _forget_member_keys(membership)
        membership.delete()


# --- API keys ------------------------------------------------------------------------


def api_key_create(
    *,
    tenant: Organization,
    actor: Membership | None,
    name: str,
    scopes: list[str] | None = None,
    read_only: bool = False,
    expires_at: datetime | None = None,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key. The plaintext is returned here, once, and stored nowhere."""
    _require_role(actor, Role.MEMBER, "create API keys")
    name = name.strip()
    if not name:
        raise TenantError("The key needs a name.", code="invalid_name", param="name")
    if len(name) > 100:
        raise TenantError(
            "The name is longer than 100 characters.", code="invalid_name", param="name"
        )
    scopes = ALL_SCOPES if scopes is None else list(dict.fromkeys(scopes))
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown or not scopes:
        raise TenantError(
            f"Scopes must be a non-empty list of {', '.join(ALL_SCOPES)}"
            + (f"; unknown: {', '.join(map(str, unknown))}." if unknown else "."),
            code="invalid_scopes",
            param="scopes",
        )
    if ApiKeyScope.ORGANIZATION in scopes and actor is not None and not read_only:
        _require_role(actor, Role.ADMIN, "create keys that manage the organization")
    if expires_at is not None and expires_at <= timezone.now():
        raise TenantError(
            "The expiry must be in the future.", code="invalid_expiry", param="expires_at"
        )
    for param, value in (
        ("requests_per_minute", requests_per_minute),
        ("tokens_per_minute", tokens_per_minute),
    ):
        if value is not None and value < 1:
            raise TenantError(f"{param} must be at least 1.", code="invalid_limit", param=param)
    for _ in range(5):
        plaintext = keys.mint_key()
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    tenant=tenant,
                    name=name,
                    prefix=keys.key_prefix(plaintext),
                    hashed_key=keys.hash_key(plaintext),
                    last_four=plaintext[-4:],
                    scopes=scopes,
                    read_only=read_only,
                    created_by=_acting_user(actor),
                    # An operator, or a key an operator minted (bounded by it, see the API).
                    minted_by_operator=_acting_user(actor) is None,
                    expires_at=expires_at,
                    requests_per_minute=requests_per_minute,
                    tokens_per_minute=tokens_per_minute,
                )
        except IntegrityError:  # a prefix collision: astronomically rare, mint again
            continue
        keys.forget_keys([api_key.prefix])
        return api_key, plaintext
    raise RuntimeError("could not mint a unique API key prefix")


def api_key_revoke(*, tenant: Organization, actor: Membership | None, api_key: ApiKey) -> ApiKey:
    if actor is not None and api_key.created_by_id != actor.user_id:
        _require_role(actor, Role.ADMIN, "revoke other members' keys")
    if api_key.revoked_at is None:
        ApiKey.objects.for_tenant(tenant).filter(pk=api_key.pk, revoked_at=None).update(
            revoked_at=timezone.now()
        )
        api_key.refresh_from_db()
    keys.forget_keys([api_key.prefix])
    return api_key


def user_api_keys_revoke(*, user: User) -> None:
    """Revoke every key a person created, in every organization; called as they are
    deleted, by whatever path, so none of their keys outlives them."""
    api_keys = ApiKey.unscoped.filter(created_by=user)
    prefixes = list(api_keys.values_list("prefix", flat=True))
    api_keys.filter(revoked_at=None).update(revoked_at=timezone.now())
    keys.forget_keys(prefixes)


def user_api_keys_forget(*, user: User) -> None:
    """Drop the cached records of a person's keys, after a change to them (is_active)."""
    keys.forget_keys(list(ApiKey.unscoped.filter(created_by=user).values_list("prefix", flat=True)))


def roles_assignable_by(actor: Membership | None) -> list[str]:
    if actor is None or actor.role == Role.OWNER:
        return list(Role.values)
    return [r for r in Role.values if ROLE_RANK[Role(r)] <= ROLE_RANK[Role.ADMIN]]
