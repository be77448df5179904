"""The invitation page an e-mailed link opens: /invitations/<token>/."""

import pytest
from django.urls import reverse

from tenants import services
from tenants.models import Invitation, Membership, Role
from tests.factories import PASSWORD
from tokenmill.dashboard.mixins import SESSION_KEY


@pytest.fixture
def invitation(acme, alice) -> tuple[Invitation, str]:
    actor = Membership.unscoped.get(tenant=acme, user=alice)
    return services.member_invite(tenant=acme, actor=actor, email="frank@example.com", role="admin")


def accept_url(token: str) -> str:
    return reverse("dashboard:invitation-accept", args=[token])


@pytest.mark.django_db
def test_anyone_with_the_link_sees_the_organization_and_role(client, invitation):
    _, token = invitation

    response = client.get(accept_url(token))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Join Acme" in page
    assert "frank@example.com" in page and ">admin<" in page
    assert f"/signup/?next=%2Finvitations%2F{token}%2F&amp;email=frank%40example.com" in page
    assert f"/login/?next=%2Finvitations%2F{token}%2F" in page


@pytest.mark.django_db
def test_sign_up_from_the_invitation_then_accept(client, acme, invitation):
    _, token = invitation
    signup = client.get(reverse("dashboard:signup"), {"next": accept_url(token)})
    assert signup.context["form"].initial == {"email": ""}  # email comes via ?email=
    assert not signup.context["form"].fields["organization_name"].required

    response = client.post(
        reverse("dashboard:signup"),
        {
            "name": "Frank",
            "email": "frank@example.com",
            "password": PASSWORD,
            "organization_name": "",
            "next": accept_url(token),
        },
    )
    assert response.status_code == 302
    assert response.url == accept_url(token)
    assert not Membership.unscoped.filter(user__email="frank@example.com").exists()

    response = client.post(accept_url(token), follow=True)

    assert "You joined Acme as admin." in response.content.decode()
    membership = Membership.unscoped.get(user__email="frank@example.com")
    assert (membership.tenant, membership.role) == (acme, Role.ADMIN)
    assert client.session[SESSION_KEY] == acme.public_id
    assert Invitation.unscoped.get(tenant=acme).status == Invitation.Status.ACCEPTED


@pytest.mark.django_db
def test_the_signup_link_prefills_the_invited_address(client, invitation):
    _, token = invitation
    response = client.get(
        reverse("dashboard:signup"), {"next": accept_url(token), "email": "frank@example.com"}
    )
    assert 'value="frank@example.com"' in response.content.decode()


@pytest.mark.django_db
def test_accepting_with_another_address_is_refused_with_a_message(charlie_client, invitation):
    _, token = invitation
    page = charlie_client.get(accept_url(token)).content.decode()
    assert "You are signed in as charlie@example.com" in page

    response = charlie_client.post(accept_url(token))

    assert response.status_code == 400
    assert (
        "This invitation is for frank@example.com; sign in with that address to accept it."
        in response.content.decode()
    )
    assert Invitation.unscoped.get(email="frank@example.com").status == Invitation.Status.PENDING


@pytest.mark.django_db
def test_the_wrong_account_can_log_out_and_come_back(charlie_client, invitation):
    _, token = invitation
    page = charlie_client.get(accept_url(token)).content.decode()
    login_url = f"/login/?next=%2Finvitations%2F{token}%2F"
    assert f'name="next" value="{login_url}"' in page

    response = charlie_client.post(reverse("dashboard:logout"), {"next": login_url})

    assert response.status_code == 302
    assert response.url == login_url
    assert not charlie_client.get(accept_url(token)).wsgi_request.user.is_authenticated


@pytest.mark.django_db
def test_accepting_needs_a_login(client, invitation):
    _, token = invitation
    response = client.post(accept_url(token))
    assert response.status_code == 302
    assert response.url == f"/login/?next=/invitations/{token}/"


@pytest.mark.django_db
def test_a_made_up_or_revoked_link_is_not_found(client, acme, invitation):
    response = client.get(accept_url("x" * 40))
    assert response.status_code == 404
    assert "This invitation link is not valid." in response.content.decode()

    invitation_row, token = invitation
    services.invitation_revoke(tenant=acme, actor=None, invitation=invitation_row)
    assert client.get(accept_url(token)).status_code == 404


@pytest.mark.django_db
def test_an_expired_link_says_so(client, invitation):
    invitation_row, token = invitation
    Invitation.unscoped.filter(pk=invitation_row.pk).update(expires_at=invitation_row.created_at)

    response = client.get(accept_url(token))

    assert response.status_code == 410
    assert "This invitation has expired; ask for a new one." in response.content.decode()
