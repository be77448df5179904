import pytest
from django.core import mail

from tenants import services
from tenants.errors import TenantError, TenantPermissionError
from tenants.models import Invitation, Membership, Role
from tests.factories import MembershipFactory, UserFactory


def member(user) -> Membership:
    return Membership.unscoped.get(user=user)


def test_creating_an_organization_makes_its_creator_the_owner(db):
    user = UserFactory()
    organization = services.organization_create(name="Initech Labs", owner=user)
    assert organization.slug == "initech-labs"
    assert member(user).role == Role.OWNER
    second = services.organization_create(name="Initech Labs", owner=UserFactory())
    assert second.slug == "initech-labs-2"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "  "}, "The organization needs a name."),
        (
            {"name": "X", "slug": "Not A Slug"},
            "'not a slug' is not a valid slug: use lowercase letters, digits and hyphens.",
        ),
        ({"name": "X", "slug": "acme"}, "The slug 'acme' is taken."),
    ],
)
def test_organization_create_errors(acme, kwargs, message):
    with pytest.raises(TenantError) as error:
        services.organization_create(owner=UserFactory(), **kwargs)
    assert error.value.message == message


def test_invite_and_accept(acme, alice):
    invitation, token = services.member_invite(
        tenant=acme, actor=member(alice), email="Dana@Example.com", role="admin"
    )
    assert invitation.email == "dana@example.com"
    assert len(mail.outbox) == 0  # sent after commit
    assert token not in invitation.token_hash
    dana = UserFactory(email="dana@example.com")
    membership = services.invitation_accept(token=token, user=dana)
    assert membership.role == Role.ADMIN and membership.tenant == acme
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.ACCEPTED
    with pytest.raises(TenantError, match=r"This invitation link is not valid\."):
        services.invitation_accept(token=token, user=dana)


def test_the_invitation_email_carries_the_link(
    acme, alice, django_capture_on_commit_callbacks, settings
):
    with django_capture_on_commit_callbacks(execute=True):
        _, token = services.member_invite(
            tenant=acme, actor=member(alice), email="dana@example.com"
        )
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["dana@example.com"]
    assert f"{settings.PUBLIC_URL}/invitations/{token}/" in mail.outbox[0].body


def test_an_invitation_is_for_its_address_only(acme, alice):
    _, token = services.member_invite(tenant=acme, actor=member(alice), email="dana@example.com")
    with pytest.raises(TenantError) as error:
        services.invitation_accept(token=token, user=UserFactory(email="eve@example.com"))
    assert (
        error.value.message
        == "This invitation is for dana@example.com; sign in with that address to accept it."
    )


def test_an_expired_invitation_is_refused(acme, alice):
    invitation, token = services.member_invite(
        tenant=acme, actor=member(alice), email="dana@example.com"
    )
    Invitation.unscoped.filter(pk=invitation.pk).update(expires_at=invitation.created_at)
    with pytest.raises(TenantError, match=r"This invitation has expired; ask for a new one\."):
        services.invitation_accept(token=token, user=UserFactory(email="dana@example.com"))


@pytest.mark.parametrize(
    ("email", "code"),
    [("bob@example.com", "already_member"), ("not-an-email", "invalid_email")],
)
def test_invite_errors(acme, alice, bob, email, code):
    with pytest.raises(TenantError) as error:
        services.member_invite(tenant=acme, actor=member(alice), email=email)
    assert error.value.code == code
    assert error.value.param == "email"


def test_a_second_pending_invitation_to_the_same_address_is_refused(acme, alice):
    services.member_invite(tenant=acme, actor=member(alice), email="dana@example.com")
    with pytest.raises(TenantError) as error:
        services.member_invite(tenant=acme, actor=member(alice), email="DANA@example.com")
    assert error.value.message == "dana@example.com already has a pending invitation."


def test_members_cannot_invite_and_admins_cannot_invite_owners(acme, alice, bob):
    with pytest.raises(TenantPermissionError) as error:
        services.member_invite(tenant=acme, actor=member(bob), email="x@example.com")
    assert (
        error.value.message == "Your role (member) cannot invite members; it needs admin or above."
    )
    admin = MembershipFactory(tenant=acme, role=Role.ADMIN)
    with pytest.raises(TenantPermissionError, match="cannot invite an owner"):
        services.member_invite(tenant=acme, actor=admin, email="x@example.com", role="owner")


def test_the_last_owner_can_never_be_demoted_or_removed(acme, alice, bob):
    owner = member(alice)
    with pytest.raises(TenantError) as error:
        services.member_change_role(tenant=acme, actor=owner, membership=owner, role="admin")
    assert (
        error.value.message == "The last owner cannot be demoted; make someone else an owner first."
    )
    with pytest.raises(TenantError, match="The last owner cannot be removed"):
        services.member_remove(tenant=acme, actor=owner, membership=owner)
    # With a second owner, the first may step down.
    services.member_change_role(tenant=acme, actor=owner, membership=member(bob), role="owner")
    services.member_change_role(tenant=acme, actor=owner, membership=owner, role="admin")
    assert member(alice).role == Role.ADMIN


def test_admins_cannot_touch_owners(acme, alice, bob):
    admin = MembershipFactory(tenant=acme, role=Role.ADMIN)
    with pytest.raises(TenantPermissionError, match="grant or take away the owner role"):
        services.member_change_role(
            tenant=acme, actor=admin, membership=member(alice), role="member"
        )
    with pytest.raises(TenantPermissionError, match="remove an owner"):
        services.member_remove(tenant=acme, actor=admin, membership=member(alice))
    services.member_change_role(tenant=acme, actor=admin, membership=member(bob), role="viewer")
    assert member(bob).role == Role.VIEWER


def test_an_unknown_role_is_refused(acme, alice, bob):
    with pytest.raises(TenantError) as error:
        services.member_change_role(
            tenant=acme, actor=member(alice), membership=member(bob), role="king"
        )
    assert error.value.message == "Unknown role 'king'; use one of owner, admin, member, viewer."


def test_a_member_may_leave(acme, alice, bob):
    services.member_remove(tenant=acme, actor=member(bob), membership=member(bob))
    assert not Membership.unscoped.filter(user=bob).exists()


def test_viewers_cannot_create_keys_and_members_cannot_create_organization_keys(acme, alice, bob):
    viewer = MembershipFactory(tenant=acme, role=Role.VIEWER)
    with pytest.raises(TenantPermissionError, match="cannot create API keys"):
        services.api_key_create(tenant=acme, actor=viewer, name="k")
    with pytest.raises(TenantPermissionError, match="create keys that manage the organization"):
        services.api_key_create(tenant=acme, actor=member(bob), name="k", scopes=["organization"])
    api_key, _ = services.api_key_create(
        tenant=acme, actor=member(bob), name="k", scopes=["models"]
    )
    assert api_key.scopes == ["models"]


def test_members_revoke_only_their_own_keys(acme, alice, bob):
    alices, _ = services.api_key_create(tenant=acme, actor=member(alice), name="alice")
    with pytest.raises(TenantPermissionError, match="revoke other members' keys"):
        services.api_key_revoke(tenant=acme, actor=member(bob), api_key=alices)
    bobs, _ = services.api_key_create(tenant=acme, actor=member(bob), name="bob", scopes=["models"])
    assert services.api_key_revoke(tenant=acme, actor=member(bob), api_key=bobs).status == "revoked"
