"""An invitation's e-mail address must fit its column, through the API and the dashboard."""

import pytest
from django.test import Client

from tenants.models import Invitation

TOO_LONG = "a" * 250 + "@example.com"  # 262 characters; the column holds 254


def test_the_api_refuses_an_email_longer_than_the_column(alice_api, acme):
    response = alice_api.post("/api/v1/invitations", {"email": TOO_LONG}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "email: Ensure this field has no more than 254 characters.",
            "type": "invalid_request_error",
            "param": "email",
            "code": "invalid_value",
        }
    }
    assert not Invitation.objects.exists()


def test_an_email_that_fits_is_invited(alice_api):
    fits = "a" * 242 + "@example.com"  # 254 characters
    response = alice_api.post("/api/v1/invitations", {"email": fits}, format="json")
    assert response.status_code == 201
    assert Invitation.objects.get().email == fits


@pytest.mark.django_db
def test_the_dashboard_refuses_an_email_longer_than_the_column(alice, acme):
    client = Client()
    client.force_login(alice)
    response = client.post("/members/invite/", {"email": TOO_LONG, "role": "member"})
    assert response.status_code == 400
    assert response.context["invite_form"].errors == {
        "email": ["Ensure this value has at most 254 characters (it has 262)."]
    }
    assert not Invitation.objects.exists()


@pytest.mark.django_db
def test_sign_up_refuses_an_email_longer_than_the_column(client):
    response = client.post(
        "/signup/",
        {
            "name": "Dana",
            "email": TOO_LONG,
            "password": "correct-horse-battery",
            "organization_name": "D",
        },
    )
    assert response.status_code in (200, 400)
    assert response.context["form"].errors["email"] == [
        "Ensure this value has at most 254 characters (it has 262)."
    ]
