from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tenants import services
from tenants.keys import PREFIX_LENGTH, forget_key, hash_key
from tenants.models import ApiKey, Membership, Organization


def _all_text_in_database() -> str:
    """Every text value in every table, to prove a secret is stored nowhere."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            chunks.extend(str(value) for row in cursor.fetchall() for value in row)
    return "\n".join(chunks)


def test_the_plaintext_is_stored_nowhere_only_prefix_hash_and_last_four(acme, alice, alice_key):
    api_key = ApiKey.unscoped.get(tenant=acme)
    assert api_key.prefix == alice_key[:PREFIX_LENGTH]
    assert api_key.last_four == alice_key[-4:]
    assert api_key.hashed_key == hash_key(alice_key) != alice_key
    secret_part = alice_key[PREFIX_LENGTH:]
    assert secret_part not in _all_text_in_database()


def test_a_key_works_and_records_its_last_use(alice_api, acme):
    assert alice_api.get("/v1/models").status_code == 200
    assert ApiKey.unscoped.get(tenant=acme).last_used_at is not None


@pytest.mark.parametrize(
    "header",
    ["Bearer tm-not-a-real-key", "Bearer tm-" + "x" * 40, "Bearer sk-1234567890abcdefghij"],
)
def test_wrong_keys_get_401_invalid_api_key(api, header, db):
    client = api(None)
    response = client.get("/v1/models", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("Incorrect API key provided")
    presented = header.split(" ", 1)[1]
    if len(presented) > 16:  # long keys are redacted, never echoed whole
        assert presented not in error["message"]


def test_a_key_that_differs_only_after_the_prefix_is_refused(api, alice_key):
    forged = alice_key[:-1] + ("A" if alice_key[-1] != "A" else "B")
    response = api(forged).get("/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_missing_key_gets_401_saying_how_to_send_one(api, db):
    response = api(None).get("/v1/models")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "missing_api_key"
    assert "Authorization: Bearer" in response.json()["error"]["message"]


def test_a_non_bearer_header_is_refused(api, db):
    response = api(None).get("/v1/models", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    assert response.status_code == 401
    assert (
        response.json()["error"]["message"]
        == "The Authorization header must read 'Bearer YOUR_KEY'."
    )


def test_revocation_takes_effect_on_the_next_request(acme, alice, alice_key, api):
    client = api(alice_key)
    assert client.get("/v1/models").status_code == 200  # the key record is now cached
    services.api_key_revoke(tenant=acme, actor=None, api_key=ApiKey.unscoped.get(tenant=acme))
    response = client.get("/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "This API key has been revoked."


def test_an_expired_key_is_refused(acme, alice, api):
    member = Membership.unscoped.get(user=alice)
    api_key, plaintext = services.api_key_create(
        tenant=acme, actor=member, name="short", expires_at=timezone.now() + timedelta(seconds=30)
    )
    assert api(plaintext).get("/v1/models").status_code == 200
    ApiKey.unscoped.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    forget_key(api_key.prefix)  # edits outside the services must forget the cached record
    response = api(plaintext).get("/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "This API key has expired."


def test_a_suspended_organization_gets_403_until_reactivated(acme, alice_key, api):
    client = api(alice_key)
    assert client.get("/v1/models").status_code == 200
    services.organization_set_status(
        tenant=acme, status=Organization.Status.SUSPENDED, reason="unpaid"
    )
    response = client.get("/v1/models")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "organization_suspended"
    services.organization_set_status(tenant=acme, status=Organization.Status.ACTIVE)
    assert client.get("/v1/models").status_code == 200


def test_removing_a_member_revokes_their_keys(acme, alice, bob, bob_key, api):
    assert api(bob_key).get("/v1/models").status_code == 200
    services.member_remove(
        tenant=acme,
        actor=Membership.unscoped.get(user=alice),
        membership=Membership.unscoped.get(user=bob),
    )
    assert api(bob_key).get("/v1/models").status_code == 401


def test_a_deactivated_persons_keys_stop_working(alice, alice_key, api):
    assert api(alice_key).get("/v1/models").status_code == 200
    alice.is_active = False
    alice.save()
    forget_key(alice_key[:PREFIX_LENGTH])  # what the console does when it saves the user
    assert api(alice_key).get("/v1/models").status_code == 401
