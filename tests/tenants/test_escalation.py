"""A bounded key cannot make a person who is not: invitations and role grants through
the API need a key with every scope, no expiry and no limits (or the dashboard)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tenants.models import Invitation, Membership, Role
from tests.factories import make_key

ALL = ["models", "files", "fine_tuning", "organization"]
REMEDY = "Do it in the dashboard, or with a key that has every scope, no expiry and no limits."


def _error(response) -> dict:
    return response.json()["error"]


def test_an_organization_key_that_expires_cannot_invite_an_admin(api, acme, alice):
    # The probe: a 10-minute key with only the organization scope invited an admin,
    # who signed up and minted a key with every scope and no expiry.
    expires = timezone.now() + timedelta(minutes=10)
    key = make_key(acme, alice, scopes=["organization"], expires_at=expires)
    response = api(key).post(
        "/api/v1/invitations", {"email": "mallory@example.com", "role": "admin"}, format="json"
    )
    assert response.status_code == 403
    assert _error(response) == {
        "message": "This API key cannot invite members: it lacks the scopes models, files, "
        f"fine_tuning, which the member could then use. {REMEDY}",
        "type": "permission_error",
        "param": None,
        "code": "scope_escalation",
    }
    assert not Invitation.objects.for_tenant(acme).exists()


@pytest.mark.parametrize(
    ("bounds", "code", "message"),
    [
        (
            {"expires_at": "soon"},
            "expiry_escalation",
            f"This API key cannot invite members: it expires, and the member's access would not. {REMEDY}",
        ),
        (
            {"requests_per_minute": 10, "tokens_per_minute": 1000},
            "limit_escalation",
            "This API key cannot invite members: it has limits (requests_per_minute, "
            f"tokens_per_minute), and the member's own keys would not. {REMEDY}",
        ),
    ],
)
def test_a_key_with_every_scope_but_other_bounds_cannot_invite(
    api, acme, alice, bounds, code, message
):
    if bounds.get("expires_at") == "soon":
        bounds = {"expires_at": timezone.now() + timedelta(days=1)}
    key = make_key(acme, alice, scopes=ALL, **bounds)
    response = api(key).post("/api/v1/invitations", {"email": "dana@example.com"}, format="json")
    assert response.status_code == 403
    assert _error(response)["code"] == code
    assert _error(response)["message"] == message
    assert not Invitation.objects.for_tenant(acme).exists()


def test_an_unbounded_key_still_invites(api, acme, alice, alice_key):
    response = api(alice_key).post(
        "/api/v1/invitations", {"email": "dana@example.com", "role": "admin"}, format="json"
    )
    assert response.status_code == 201
    assert Invitation.objects.for_tenant(acme).get().role == Role.ADMIN


def test_a_bounded_key_cannot_raise_a_role(api, acme, alice, bob):
    key = make_key(acme, alice, scopes=["organization"])
    bob_membership = Membership.objects.for_tenant(acme).get(user=bob)
    response = api(key).patch(
        f"/api/v1/members/{bob_membership.public_id}", {"role": "admin"}, format="json"
    )
    assert response.status_code == 403
    assert _error(response)["code"] == "scope_escalation"
    assert _error(response)["message"] == (
        "This API key cannot grant a higher role: it lacks the scopes models, files, "
        f"fine_tuning, which the member could then use. {REMEDY}"
    )
    bob_membership.refresh_from_db()
    assert bob_membership.role == Role.MEMBER


def test_an_expiring_key_cannot_raise_a_role_but_may_lower_one(api, acme, alice, bob):
    key = make_key(acme, alice, scopes=ALL, expires_at=timezone.now() + timedelta(hours=1))
    bob_membership = Membership.objects.for_tenant(acme).get(user=bob)
    url = f"/api/v1/members/{bob_membership.public_id}"
    raised = api(key).patch(url, {"role": "admin"}, format="json")
    assert raised.status_code == 403
    assert _error(raised)["code"] == "expiry_escalation"
    lowered = api(key).patch(url, {"role": "viewer"}, format="json")
    assert lowered.status_code == 200
    bob_membership.refresh_from_db()
    assert bob_membership.role == Role.VIEWER


def test_a_dashboard_session_invites_without_any_key(client, acme, alice):
    client.force_login(alice)
    response = client.post("/members/invite/", {"email": "dana@example.com", "role": "admin"})
    assert response.status_code in (200, 302)
    assert Invitation.objects.for_tenant(acme).get().email == "dana@example.com"
