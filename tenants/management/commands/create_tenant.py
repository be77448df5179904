from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from tenants import services
from tenants.errors import TenantError
from tenants.models import User


def _owner(email: str, password: str | None) -> tuple[User, bool]:
    """The user with this address, created if there is none; the database decides, so
    a concurrent sign-up with the same address makes this one the owner, not an error."""
    user = User.objects.filter(email__iexact=email).first()
    if user is not None:
        return user, False
    try:
        with transaction.atomic():
            return User.objects.create_user(email, password), True
    except IntegrityError:
        return User.objects.get(email__iexact=email), False


class Command(BaseCommand):
    help = (
        "Create an organization and its owner (a new user unless the e-mail exists), "
        "then print a new API key for it as the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="URL-safe organization id, e.g. acme")
        parser.add_argument("--owner", required=True, help="the owner's e-mail address")
        parser.add_argument("--name", help="display name (defaults to the slug)")
        parser.add_argument("--password", help="the owner's dashboard password, for a new user")
        parser.add_argument("--key-name", default="default", help="name of the first API key")

    def handle(self, *args, slug, owner, name, password, key_name, **options):
        try:
            validate_email(owner)
        except ValidationError:
            raise CommandError(f"{owner!r} is not an e-mail address.") from None
        try:
            with transaction.atomic():
                user, created_user = _owner(owner, password)
                organization = services.organization_create(
                    name=name or slug, slug=slug, owner=user
                )
                _, plaintext = services.api_key_create(
                    tenant=organization, actor=None, name=key_name
                )
        except (TenantError, ValueError) as error:
            raise CommandError(getattr(error, "message", str(error))) from None
        self.stdout.write(f"Created organization {organization.slug} ({organization.public_id}).")
        if created_user:
            hint = (
                "with the password given"
                if password
                else "after setting a password (manage.py changepassword)"
            )
            self.stdout.write(f"Created user {user.email}; they can sign in {hint}.")
        self.stdout.write(f"API key {key_name!r} (shown once, store it now):")
        self.stdout.write(plaintext)
