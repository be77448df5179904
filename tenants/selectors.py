"""Reads on tenants, for views and services."""

from django.db.models import QuerySet

from tenants.models import ApiKey, Invitation, Membership, Organization, User


def email_taken(*, email: str) -> bool:
    return User.objects.filter(email__iexact=email.strip()).exists()


def user_organizations(*, user: User) -> QuerySet[Organization]:
    return Organization.objects.filter(memberships__user=user).order_by("name")


def member_list(*, tenant: Organization) -> QuerySet[Membership]:
    return Membership.objects.for_tenant(tenant).select_related("user").order_by("created_at")


def invitation_list(
    *, tenant: Organization, status: str | None = Invitation.Status.PENDING
) -> QuerySet[Invitation]:
    invitations = Invitation.objects.for_tenant(tenant).select_related("invited_by")
    return invitations.filter(status=status) if status else invitations


def api_key_list(*, tenant: Organization, include_revoked: bool = False) -> QuerySet[ApiKey]:
    api_keys = ApiKey.objects.for_tenant(tenant).select_related("created_by")
    return api_keys if include_revoked else api_keys.filter(revoked_at=None)
