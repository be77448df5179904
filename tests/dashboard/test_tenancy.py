"""Another organization's objects answer 404; forms need their CSRF token."""

import pytest
from django.test import Client
from django.urls import reverse

from tenants import services
from tenants.models import ApiKey, Invitation, Membership, Role
from tests.factories import make_key
from tokenmill.dashboard.mixins import TenantMixin


@pytest.fixture
def acme_objects(acme, alice, bob) -> dict[str, str]:
    """The URLs of one of each of acme's objects."""
    key = ApiKey.unscoped.get(prefix=make_key(acme, alice)[:12])
    invitation, _ = services.member_invite(tenant=acme, actor=None, email="g@example.com")
    bob_membership = Membership.unscoped.get(tenant=acme, user=bob)
    return {
        "key revoke": reverse("dashboard:api-key-revoke", args=[key.public_id]),
        "member role": reverse("dashboard:member-role", args=[bob_membership.public_id]),
        "member remove": reverse("dashboard:member-remove", args=[bob_membership.public_id]),
        "invitation revoke": reverse("dashboard:invitation-revoke", args=[invitation.public_id]),
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "what", ["key revoke", "member role", "member remove", "invitation revoke"]
)
def test_another_organizations_objects_are_not_found(charlie_client, acme_objects, what):
    response = charlie_client.post(acme_objects[what], {"role": Role.OWNER})

    assert response.status_code == 404
    assert "This page does not exist, or you do not have access to it." in (
        response.content.decode()
    )


@pytest.mark.django_db
def test_nothing_of_acme_changed_after_charlies_attempts(charlie_client, acme, acme_objects):
    for url in acme_objects.values():
        charlie_client.post(url, {"role": Role.OWNER})
        assert charlie_client.get(url).status_code in (404, 405)

    assert not ApiKey.unscoped.filter(tenant=acme, revoked_at__isnull=False).exists()
    assert Membership.unscoped.get(tenant=acme, user__email="bob@example.com").role == Role.MEMBER
    assert Invitation.unscoped.get(tenant=acme).status == Invitation.Status.PENDING


@pytest.mark.django_db
def test_charlie_sees_nothing_of_acme(charlie_client, acme_objects):
    for url in ("/", "/members/", "/api-keys/"):
        page = charlie_client.get(url).content.decode()
        for text in ("Acme", "alice@example.com", "bob@example.com", "g@example.com"):
            assert text not in page, (url, text)


@pytest.mark.django_db
def test_forms_need_the_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = client.post(reverse("dashboard:api-keys"), {"name": "x", "scopes": ["models"]})

    assert response.status_code == 403
    assert not ApiKey.unscoped.exists()
    page = client.get(reverse("dashboard:api-keys")).content.decode()
    assert 'name="csrfmiddlewaretoken"' in page


def test_a_view_cannot_override_get_queryset():
    with pytest.raises(TypeError, match="define tenant_queryset"):

        class Unscoped(TenantMixin):
            def get_queryset(self):
                return ApiKey.unscoped.all()


@pytest.mark.django_db
def test_the_500_page_renders_without_touching_the_database(rf, django_assert_num_queries):
    from tokenmill.dashboard.views.errors import server_error

    with django_assert_num_queries(0):
        response = server_error(rf.get("/"))

    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_a_suspended_organization_can_look_but_not_change_anything(alice_client, acme):
    from tenants import services

    services.organization_set_status(tenant=acme, status="suspended")
    assert alice_client.get("/api-keys/").status_code == 200
    response = alice_client.post("/api-keys/", {"name": "new", "scopes": ["models"]})
    assert response.status_code == 403
    assert (
        "Acme is suspended, so nothing can be changed. Contact support."
        in response.content.decode()
    )
