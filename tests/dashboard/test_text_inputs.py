"""Dashboard forms cannot carry a lone surrogate: a form's bytes that are not UTF-8 (as a
surrogate would be encoded) are decoded with replacement characters, so nothing stored
from a form fails to encode, and no page answers 500."""

import pytest

from tenants.models import ApiKey, Invitation, Organization

SURROGATE_BYTES = b"%ED%BF%BF"  # what "\udfff" becomes when a client encodes it anyway


def post_form(client, path: str, body: bytes):
    return client.post(path, data=body, content_type="application/x-www-form-urlencoded")


def storable(text: str) -> bool:
    text.encode("utf-8")  # raises for a lone surrogate
    return True


@pytest.mark.django_db
def test_forms_store_only_text_that_encodes(alice_client, acme):
    created = post_form(alice_client, "/organizations/new/", b"name=Beta" + SURROGATE_BYTES)
    assert created.status_code == 302
    assert all(storable(org.name) for org in Organization.objects.all())

    key = post_form(alice_client, "/api-keys/", b"name=ci" + SURROGATE_BYTES + b"&scopes=models")
    assert key.status_code in (200, 201, 302)
    assert all(storable(k.name) for k in ApiKey.objects.all())

    invite = post_form(
        alice_client,
        "/members/invite/",
        b"email=d" + SURROGATE_BYTES + b"%40example.com&role=member",
    )
    assert invite.status_code == 400  # not an e-mail address once decoded
    assert not Invitation.objects.exists()
