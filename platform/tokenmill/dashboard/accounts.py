"""Sign-up: a new person and, usually, their first organization, in one transaction.

tenants.services has no user-creation service yet; this is the one place the
dashboard writes a user, and it belongs there if another surface ever signs people up.
"""

from django.db import IntegrityError, transaction

from tenants import services
from tenants.errors import TenantError
from tenants.models import Organization, User


def email_taken(email: str) -> bool:
    return User.objects.filter(email__iexact=email.strip()).exists()


def user_sign_up(
    *, email: str, name: str, password: str, organization_name: str | None
) -> tuple[User, Organization | None]:
    """Create the user, and the organization they own when a name is given.

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
            organization = services.organization_create(name=organization_name, owner=user)
    return user, organization
