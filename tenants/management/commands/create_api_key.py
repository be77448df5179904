from django.core.management.base import BaseCommand, CommandError

from tenants import services
from tenants.errors import TenantError
from tenants.models import ApiKeyScope, Organization


class Command(BaseCommand):
    help = "Create an API key for an organization and print it as the last line."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the organization's slug")
        parser.add_argument("--name", required=True, help="a name that says what the key is for")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=ApiKeyScope.values,
            help="limit the key to a scope (repeatable); all scopes by default",
        )
        parser.add_argument("--read-only", action="store_true", help="refuse writes with this key")

    def handle(self, *args, slug, name, scopes, read_only, **options):
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise CommandError(f"No organization with slug {slug!r}.")
        try:
            api_key, plaintext = services.api_key_create(
                tenant=organization, actor=None, name=name, scopes=scopes, read_only=read_only
            )
        except TenantError as error:
            raise CommandError(error.message) from None
        self.stdout.write(
            f"API key {api_key.name!r} ({api_key.public_id}) for {organization.slug}, shown once:"
        )
        self.stdout.write(plaintext)
