"""The members page: roles, removal, invitations."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from tenants import services
from tenants.models import ApiKey, Invitation, Membership, Role
from tests.factories import make_key


def membership(tenant, user) -> Membership:
    return Membership.unscoped.get(tenant=tenant, user=user)


@pytest.mark.django_db
def test_the_page_lists_members_with_their_roles(alice_client, acme, alice, bob):
    response = alice_client.get(reverse("dashboard:members"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "alice@example.com" in page and "bob@example.com" in page
    rows = {row.membership.user.email: row for row in response.context["rows"]}
    assert rows["alice@example.com"].membership.role == Role.OWNER
    assert rows["bob@example.com"].can_edit
    assert 'action="/members/invite/"' in page


@pytest.mark.django_db
def test_an_owner_changes_a_role(alice_client, acme, bob):
    bob_membership = membership(acme, bob)

    response = alice_client.post(
        reverse("dashboard:member-role", args=[bob_membership.public_id]),
        {"role": Role.ADMIN},
        follow=True,
    )

    assert "bob@example.com is now admin." in response.content.decode()
    bob_membership.refresh_from_db()
    assert bob_membership.role == Role.ADMIN


@pytest.mark.django_db
def test_the_last_owner_cannot_be_demoted_and_is_told_why(alice_client, acme, alice):
    alice_membership = membership(acme, alice)

    response = alice_client.post(
        reverse("dashboard:member-role", args=[alice_membership.public_id]), {"role": "member"}
    )

    assert response.status_code == 400
    page = response.content.decode()
    message = "The last owner cannot be demoted; make someone else an owner first."
    row = re.search(rf'<tr id="member-{alice_membership.public_id}".*?</tr>', page, re.S)
    assert message in row.group(0)  # shown on alice's own row
    alice_membership.refresh_from_db()
    assert alice_membership.role == Role.OWNER


@pytest.mark.django_db
def test_an_admin_cannot_touch_an_owner(login, acme, alice, bob):
    services.member_change_role(
        tenant=acme, actor=None, membership=membership(acme, bob), role=Role.ADMIN
    )
    bob_client = login(bob)
    page = bob_client.get(reverse("dashboard:members"))
    rows = {row.membership.user.email: row for row in page.context["rows"]}
    assert not rows["alice@example.com"].can_edit  # no controls on the owner's row

    response = bob_client.post(
        reverse("dashboard:member-role", args=[membership(acme, alice).public_id]),
        {"role": "viewer"},
    )

    assert response.status_code == 403
    assert "cannot grant or take away the owner role" in response.content.decode()
    assert membership(acme, alice).role == Role.OWNER


@pytest.mark.django_db
def test_an_unknown_role_is_refused_in_place(alice_client, acme, bob):
    bob_membership = membership(acme, bob)
    response = alice_client.post(
        reverse("dashboard:member-role", args=[bob_membership.public_id]), {"role": "emperor"}
    )
    assert response.status_code == 400
    assert "Choose a valid role." in response.content.decode()


@pytest.mark.django_db
def test_a_member_cannot_change_roles(bob_client, acme, alice, bob):
    page = bob_client.get(reverse("dashboard:members"))
    assert page.status_code == 200
    assert 'name="role"' not in page.content.decode()  # read-only for members

    response = bob_client.post(
        reverse("dashboard:member-role", args=[membership(acme, bob).public_id]),
        {"role": Role.OWNER},
    )

    assert response.status_code == 403
    page = response.content.decode()
    assert "You do not have access to this" in page
    assert "Your role (member) cannot do this; it needs admin or above." in page
    assert membership(acme, bob).role == Role.MEMBER


@pytest.mark.django_db
def test_remove_a_member_after_confirming(alice_client, acme, bob):
    bob_membership = membership(acme, bob)
    bob_key = make_key(acme, bob, scopes=["models"])
    url = reverse("dashboard:member-remove", args=[bob_membership.public_id])

    confirm = alice_client.get(url)
    assert confirm.status_code == 200
    assert "bob@example.com loses access to Acme" in confirm.content.decode()

    response = alice_client.post(url, follow=True)

    assert "Removed bob@example.com." in response.content.decode()
    assert not Membership.unscoped.filter(pk=bob_membership.pk).exists()
    assert ApiKey.unscoped.get(prefix=bob_key[:12]).revoked_at is not None


@pytest.mark.django_db
def test_the_last_owner_cannot_leave(alice_client, acme, alice):
    alice_membership = membership(acme, alice)

    response = alice_client.post(
        reverse("dashboard:member-remove", args=[alice_membership.public_id])
    )

    assert response.status_code == 400
    assert "The last owner cannot be removed" in response.content.decode()
    assert Membership.unscoped.filter(pk=alice_membership.pk).exists()


@pytest.mark.django_db
def test_a_member_may_leave_but_not_remove_others(bob_client, acme, alice, bob):
    response = bob_client.post(
        reverse("dashboard:member-remove", args=[membership(acme, alice).public_id])
    )
    assert response.status_code == 403
    assert "cannot remove members" in response.content.decode()

    response = bob_client.post(
        reverse("dashboard:member-remove", args=[membership(acme, bob).public_id])
    )
    assert response.status_code == 302
    assert not Membership.unscoped.filter(tenant=acme, user=bob).exists()


@pytest.mark.django_db
def test_invite_by_email(alice_client, acme, settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(
            reverse("dashboard:member-invite"),
            {"email": "Frank@Example.com", "role": Role.ADMIN},
            follow=True,
        )

    assert response.status_code == 200
    assert "Invitation sent to frank@example.com" in response.content.decode()
    invitation = Invitation.unscoped.get(tenant=acme, email="frank@example.com")
    assert invitation.role == Role.ADMIN
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["frank@example.com"]
    link = re.search(r"(\S+/invitations/\S+/)", mail.outbox[0].body).group(1)
    assert link.startswith(f"{settings.PUBLIC_URL}/invitations/")
    page = response.content.decode()
    assert f'id="invitation-{invitation.public_id}"' in page  # listed as pending
    # The link is on the page once, to copy, for when the e-mail does not arrive.
    assert f'<code id="invitation-link" class="secret-value">{link}</code>' in page
    assert 'data-copy="invitation-link"' in page
    assert "no-store" in response["Cache-Control"]
    assert "E-mail is not set up" not in page  # the tests' backend keeps mail, it does not print it
    assert link not in alice_client.get(reverse("dashboard:members")).content.decode()


@pytest.mark.django_db
def test_the_invitation_says_when_mail_only_goes_to_the_console(alice_client, acme, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

    response = alice_client.post(
        reverse("dashboard:member-invite"), {"email": "frank@example.com", "role": Role.MEMBER}
    )

    page = response.content.decode()
    assert "E-mail is not set up on this installation" in page
    assert "Copy the link and send it to them yourself." in page
    assert "/invitations/" in page


@pytest.mark.django_db
def test_the_last_owner_is_not_offered_leave(alice_client, bob_client, acme, alice, bob):
    page = alice_client.get(reverse("dashboard:members")).content.decode()
    alice_row = re.search(
        rf'<tr id="member-{membership(acme, alice).public_id}".*?</tr>', page, re.S
    ).group(0)
    assert ">Leave<" not in alice_row
    assert "You are the only owner: make someone else an owner before you can leave." in alice_row
    # Bob (a member) may leave.
    page = bob_client.get(reverse("dashboard:members")).content.decode()
    bob_row = re.search(
        rf'<tr id="member-{membership(acme, bob).public_id}".*?</tr>', page, re.S
    ).group(0)
    assert ">Leave<" in bob_row

    # With a second owner, alice may leave.
    services.member_change_role(
        tenant=acme, actor=membership(acme, alice), membership=membership(acme, bob), role="owner"
    )
    page = alice_client.get(reverse("dashboard:members")).content.decode()
    alice_row = re.search(
        rf'<tr id="member-{membership(acme, alice).public_id}".*?</tr>', page, re.S
    ).group(0)
    assert ">Leave<" in alice_row


@pytest.mark.django_db
def test_revoking_an_invitation_asks_on_a_page_first(alice_client, acme):
    invitation, _ = services.member_invite(tenant=acme, actor=None, email="g@example.com")
    url = reverse("dashboard:invitation-revoke", args=[invitation.public_id])

    members = alice_client.get(reverse("dashboard:members")).content.decode()
    assert f'href="{url}"' in members
    confirm = alice_client.get(url).content.decode()

    assert "Revoke the invitation for g@example.com?" in confirm
    assert f'action="{url}"' in confirm
    assert Invitation.unscoped.get(pk=invitation.pk).status == Invitation.Status.PENDING
    alice_client.post(url)
    assert Invitation.unscoped.get(pk=invitation.pk).status == Invitation.Status.REVOKED


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("bob@example.com", "bob@example.com is already a member."),
        ("pending@example.com", "pending@example.com already has a pending invitation."),
        ("not-an-address", "Enter a valid email address."),
    ],
)
def test_invitation_errors_show_on_the_email_field(alice_client, acme, bob, email, message):
    services.member_invite(tenant=acme, actor=None, email="pending@example.com")

    response = alice_client.post(
        reverse("dashboard:member-invite"), {"email": email, "role": Role.MEMBER}
    )

    assert response.status_code == 400
    assert response.context["invite_form"].errors["email"] == [message]
    assert 'id="id_email_error"' in response.content.decode()


@pytest.mark.django_db
def test_only_an_owner_may_invite_an_owner(login, acme, bob):
    services.member_change_role(
        tenant=acme, actor=None, membership=membership(acme, bob), role=Role.ADMIN
    )
    bob_client = login(bob)
    choices = dict(bob_client.get("/members/").context["invite_form"].fields["role"].choices)
    assert Role.OWNER not in choices

    response = bob_client.post(
        reverse("dashboard:member-invite"), {"email": "x@example.com", "role": Role.OWNER}
    )
    assert response.status_code == 400
    assert "role" in response.context["invite_form"].errors


@pytest.mark.django_db
def test_revoke_a_pending_invitation(alice_client, acme):
    invitation, _token = services.member_invite(tenant=acme, actor=None, email="g@example.com")

    response = alice_client.post(
        reverse("dashboard:invitation-revoke", args=[invitation.public_id]), follow=True
    )

    assert "Revoked the invitation for g@example.com." in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.REVOKED
    assert "No pending invitations." in response.content.decode()


@pytest.mark.django_db
def test_an_expired_invitation_is_marked(alice_client, acme):
    invitation, _token = services.member_invite(tenant=acme, actor=None, email="g@example.com")
    Invitation.unscoped.filter(pk=invitation.pk).update(expires_at=invitation.created_at)

    page = alice_client.get(reverse("dashboard:members")).content.decode()

    row = re.search(rf'<tr id="invitation-{invitation.public_id}".*?</tr>', page, re.S).group(0)
    assert "Expired" in row


@pytest.mark.django_db
def test_a_viewer_sees_a_read_only_page(dave_client, acme):
    services.member_invite(tenant=acme, actor=None, email="g@example.com")

    page = dave_client.get(reverse("dashboard:members")).content.decode()

    assert "only admins and owners can invite people" in page
    assert 'action="/members/invite/"' not in page
    assert 'name="role"' not in page
    assert "/revoke/" not in page
    assert "g@example.com" in page

    response = dave_client.post(reverse("dashboard:member-invite"), {"email": "h@example.com"})
    assert response.status_code == 403
