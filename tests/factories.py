"""Factories for the test suite's own small data."""

import factory

from tenants import services
from tenants.models import Membership, Organization, Role, User

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    first_name = factory.Faker("first_name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


def make_key(tenant: Organization, user: User | None, **kwargs) -> str:
    """Create an API key as `user` (None: an operator key) and return its plaintext."""
    actor = Membership.unscoped.get(tenant=tenant, user=user) if user else None
    kwargs.setdefault("name", "test key")
    _, plaintext = services.api_key_create(tenant=tenant, actor=actor, **kwargs)
    return plaintext
