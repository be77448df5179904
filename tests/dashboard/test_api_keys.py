"""The API keys page: create (the secret shown once), list, revoke."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.urls import reverse

from tenants.keys import hash_key
from tenants.models import ApiKey
from tests.conftest import bearer_client
from tests.factories import make_key

KEY_PATTERN = re.compile(r"tm-[A-Za-z0-9]{40}")


def create(client, **fields):
    data = {"name": "backend", "scopes": ["models", "files"], **fields}
    return client.post(reverse("dashboard:api-keys"), data)


@pytest.mark.django_db
def test_a_new_key_is_shown_once(alice_client, acme, alice):
    response = create(alice_client)

    assert response.status_code == 201
    page = response.content.decode()
    [plaintext] = set(KEY_PATTERN.findall(page))
    assert "It will not be shown again." in page
    assert 'data-copy="new-key-value"' in page
    assert "no-store" in response["Cache-Control"]
    api_key = ApiKey.unscoped.get(tenant=acme)
    assert api_key.hashed_key == hash_key(plaintext)
    assert (api_key.name, api_key.scopes, api_key.created_by) == (
        "backend",
        ["models", "files"],
        alice,
    )
    # Kept nowhere: not in the session, and a reload shows only the redacted form.
    assert plaintext not in str(dict(alice_client.session.items()))
    reloaded = alice_client.get(reverse("dashboard:api-keys")).content.decode()
    assert plaintext not in reloaded
    assert not KEY_PATTERN.search(reloaded)
    assert f"{plaintext[:12]}…{plaintext[-4:]}" in reloaded
    # And it works.
    assert bearer_client(plaintext).get("/v1/models").status_code == 200


@pytest.mark.django_db
def test_the_list_shows_each_key_redacted_with_its_details(alice_client, acme, alice, bob):
    plaintext = make_key(acme, bob, name="bob's key", scopes=["models"], read_only=True)
    ApiKey.unscoped.filter(prefix=plaintext[:12]).update(
        requests_per_minute=60, expires_at=datetime(2999, 1, 2, tzinfo=UTC)
    )

    page = alice_client.get(reverse("dashboard:api-keys")).content.decode()

    assert f"{plaintext[:12]}…{plaintext[-4:]}" in page
    assert plaintext not in page
    row = re.search(r'<tr id="key-.*?</tr>', page, re.S).group(0)
    for text in ("bob&#x27;s key", "models", "read-only", "bob@example.com", "Never", "Active"):
        assert text in row
    assert "60 req/min" in row and "Jan 2, 2999" in row


@pytest.mark.django_db
def test_create_with_expiry_and_limits(alice_client, acme):
    day = date.today() + timedelta(days=30)
    response = create(
        alice_client,
        read_only="on",
        expires_at=day.isoformat(),
        requests_per_minute="60",
        tokens_per_minute="10000",
    )

    assert response.status_code == 201
    api_key = ApiKey.unscoped.get(tenant=acme)
    assert api_key.read_only
    assert api_key.expires_at == datetime(day.year, day.month, day.day, tzinfo=UTC)
    assert (api_key.requests_per_minute, api_key.tokens_per_minute) == (60, 10000)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": "  "}, "name", "This field is required."),
        ({"scopes": []}, "scopes", "Pick at least one scope."),
        (
            {"scopes": ["root"]},
            "scopes",
            "Select a valid choice. root is not one of the available choices.",
        ),
        ({"expires_at": "2001-01-01"}, "expires_at", "The expiry must be in the future."),
        (
            {"requests_per_minute": "0"},
            "requests_per_minute",
            "Ensure this value is greater than or equal to 1.",
        ),
    ],
)
def test_create_errors_show_on_their_field(alice_client, acme, fields, field, message):
    response = create(alice_client, **fields)

    assert response.status_code == 400
    assert response.context["form"].errors[field] == [message]
    assert f'id="id_{field}_error"' in response.content.decode()
    assert 'id="create-key" open>' in response.content.decode()  # the form stays open
    assert not ApiKey.unscoped.exists()


@pytest.mark.django_db
def test_a_member_cannot_mint_an_organization_key(bob_client, acme):
    response = create(bob_client, scopes=["models", "organization"])

    assert response.status_code == 403
    assert (
        "Your role (member) cannot create keys that manage the organization; it needs admin or above."
        in response.content.decode()
    )
    assert not ApiKey.unscoped.exists()


@pytest.mark.django_db
def test_revoke_after_confirming(alice_client, acme, alice):
    plaintext = make_key(acme, alice, name="old key")
    api_key = ApiKey.unscoped.get(prefix=plaintext[:12])
    url = reverse("dashboard:api-key-revoke", args=[api_key.public_id])

    confirm = alice_client.get(url)
    assert confirm.status_code == 200
    assert "Revoke “old key”?" in confirm.content.decode()
    assert bearer_client(plaintext).get("/v1/models").status_code == 200

    response = alice_client.post(url, follow=True)

    page = response.content.decode()
    assert f"Revoked old key ({api_key.redacted})." in page
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert "Revoked</span>" in page
    assert bearer_client(plaintext).get("/v1/models").status_code == 401


@pytest.mark.django_db
def test_a_member_revokes_own_keys_only(bob_client, acme, alice, bob):
    alices = ApiKey.unscoped.get(prefix=make_key(acme, alice)[:12])
    bobs = ApiKey.unscoped.get(prefix=make_key(acme, bob, scopes=["models"])[:12])
    page = bob_client.get(reverse("dashboard:api-keys")).content.decode()
    assert reverse("dashboard:api-key-revoke", args=[bobs.public_id]) in page
    assert reverse("dashboard:api-key-revoke", args=[alices.public_id]) not in page

    response = bob_client.post(reverse("dashboard:api-key-revoke", args=[alices.public_id]))
    assert response.status_code == 403
    assert "cannot revoke other members&#x27; keys" in response.content.decode()
    alices.refresh_from_db()
    assert alices.revoked_at is None

    response = bob_client.post(reverse("dashboard:api-key-revoke", args=[bobs.public_id]))
    assert response.status_code == 302
    bobs.refresh_from_db()
    assert bobs.revoked_at is not None


@pytest.mark.django_db
def test_a_viewer_sees_keys_but_cannot_create_or_revoke(dave_client, acme, alice):
    api_key = ApiKey.unscoped.get(prefix=make_key(acme, alice)[:12])

    page = dave_client.get(reverse("dashboard:api-keys")).content.decode()

    assert api_key.redacted in page
    assert "You have view-only access" in page
    assert 'name="scopes"' not in page
    assert "/revoke/" not in page
    assert create(dave_client).status_code == 403
    revoke = reverse("dashboard:api-key-revoke", args=[api_key.public_id])
    assert dave_client.get(revoke).status_code == 403
    assert dave_client.post(revoke).status_code == 403


@pytest.mark.django_db
def test_an_empty_list_invites_you_to_create_a_key(alice_client):
    page = alice_client.get(reverse("dashboard:api-keys")).content.decode()
    assert "No API keys yet" in page
    assert '<details class="card section create-panel" id="create-key" open>' in page
