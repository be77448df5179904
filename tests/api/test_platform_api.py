from tenants.models import ApiKey, Membership, Role
from tests.factories import MembershipFactory, make_key


def test_organization_read_and_rename(alice_api):
    body = alice_api.get("/api/v1/organization").json()
    assert (
        body["object"] == "organization"
        and body["slug"] == "acme"
        and body["id"].startswith("org-")
    )
    renamed = alice_api.patch("/api/v1/organization", {"name": "Acme Corp"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Acme Corp"


def test_validation_errors_name_the_parameter(alice_api):
    response = alice_api.patch("/api/v1/organization", {"name": ""}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "name: This field may not be blank.",
            "type": "invalid_request_error",
            "param": "name",
            "code": "invalid_value",
        }
    }


def test_members_list_change_role_and_remove(alice_api, bob, acme):
    members = alice_api.get("/api/v1/members").json()
    assert [m["email"] for m in members["data"]] == ["alice@example.com", "bob@example.com"]
    bob_id = members["data"][1]["id"]
    changed = alice_api.patch(f"/api/v1/members/{bob_id}", {"role": "admin"}, format="json")
    assert changed.status_code == 200 and changed.json()["role"] == "admin"
    unknown = alice_api.patch(f"/api/v1/members/{bob_id}", {"role": "king"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "role"
    deleted = alice_api.delete(f"/api/v1/members/{bob_id}")
    assert deleted.json() == {
        "id": bob_id,
        "object": "organization.member.deleted",
        "deleted": True,
    }
    assert not Membership.unscoped.filter(user=bob).exists()


def test_the_last_owner_cannot_be_demoted_through_the_api(alice_api, alice):
    alice_id = Membership.unscoped.get(user=alice).public_id
    response = alice_api.patch(f"/api/v1/members/{alice_id}", {"role": "member"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "The last owner cannot be demoted; make someone else an owner first.",
        "type": "invalid_request_error",
        "param": "role",
        "code": "last_owner",
    }


def test_invitations_create_list_and_revoke(
    alice_api, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = alice_api.post(
            "/api/v1/invitations", {"email": "dana@example.com", "role": "viewer"}, format="json"
        )
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "pending" and body["role"] == "viewer" and "token" not in body
    assert len(mailoutbox) == 1
    assert [i["email"] for i in alice_api.get("/api/v1/invitations").json()["data"]] == [
        "dana@example.com"
    ]
    revoked = alice_api.delete(f"/api/v1/invitations/{body['id']}")
    assert revoked.json()["status"] == "revoked"
    again = alice_api.delete(f"/api/v1/invitations/{body['id']}")
    assert again.status_code == 400 and again.json()["error"]["code"] == "invitation_not_pending"


def test_api_key_create_returns_the_secret_once(alice_api, api):
    created = alice_api.post(
        "/api/v1/api-keys", {"name": "ci", "scopes": ["models"]}, format="json"
    )
    assert created.status_code == 201
    body = created.json()
    secret = body["key"]
    assert (
        secret.startswith("tm-")
        and body["last_four"] == secret[-4:]
        and secret.startswith(body["prefix"])
    )
    assert api(secret).get("/v1/models").status_code == 200
    listed = alice_api.get("/api/v1/api-keys").json()["data"]
    row = next(k for k in listed if k["id"] == body["id"])
    assert "key" not in row and row["redacted_value"] == f"{body['prefix']}…{secret[-4:]}"
    assert "key" not in alice_api.get(f"/api/v1/api-keys/{body['id']}").json()


def test_api_key_create_errors(alice_api):
    response = alice_api.post(
        "/api/v1/api-keys", {"name": "x", "scopes": ["everything"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "scopes[0]"
    assert response.json()["error"]["message"] == 'scopes[0]: "everything" is not a valid choice.'
    past = alice_api.post(
        "/api/v1/api-keys", {"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, format="json"
    )
    assert (
        past.status_code == 400
        and past.json()["error"]["message"] == "The expiry must be in the future."
    )


def test_api_key_revoke_through_the_api(alice_api, api, acme, alice):
    secret = make_key(acme, alice, name="old")
    key_id = ApiKey.unscoped.get(name="old").public_id
    assert alice_api.delete(f"/api/v1/api-keys/{key_id}").json()["status"] == "revoked"
    assert api(secret).get("/v1/models").status_code == 401


def test_a_key_without_the_scope_gets_403(api, acme, alice):
    models_only = make_key(acme, alice, scopes=["models"])
    response = api(models_only).get("/api/v1/members")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert response.json()["error"]["type"] == "permission_error"


def test_a_read_only_key_reads_but_cannot_write(api, acme, alice):
    read_only = make_key(acme, alice, read_only=True)
    client = api(read_only)
    assert client.get("/api/v1/members").status_code == 200
    response = client.post("/api/v1/api-keys", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {
        "message": "This API key is read-only.",
        "type": "permission_error",
        "param": None,
        "code": "read_only_key",
    }


def test_a_key_acts_with_its_creators_current_role(api, acme, alice, bob):
    admin = MembershipFactory(tenant=acme, role=Role.ADMIN)
    key = make_key(acme, admin.user)
    client = api(key)
    assert (
        client.post("/api/v1/invitations", {"email": "z@example.com"}, format="json").status_code
        == 201
    )
    Membership.unscoped.filter(pk=admin.pk).update(role=Role.VIEWER)
    from tenants.keys import forget_key

    forget_key(key[:12])
    response = client.post("/api/v1/invitations", {"email": "y@example.com"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_role"


def test_cursor_pagination(alice_api, acme, alice):
    for n in range(5):
        make_key(acme, alice, name=f"k{n}")
    first = alice_api.get("/api/v1/api-keys?limit=2").json()
    assert [k["name"] for k in first["data"]] == ["k4", "k3"] and first["has_more"] is True
    second = alice_api.get(f"/api/v1/api-keys?limit=2&after={first['last_id']}").json()
    assert [k["name"] for k in second["data"]] == ["k2", "k1"]
    last = alice_api.get(f"/api/v1/api-keys?limit=10&after={second['last_id']}").json()
    assert [k["name"] for k in last["data"]] == ["k0", "alice's key"] and last["has_more"] is False


def test_a_bad_limit_is_a_400_naming_it(alice_api):
    for raw, message in [
        ("abc", "limit must be a whole number, got 'abc'."),
        ("0", "limit must be between 1 and 100, got 0."),
    ]:
        response = alice_api.get(f"/api/v1/api-keys?limit={raw}")
        assert response.status_code == 400
        assert response.json()["error"]["message"] == message
        assert response.json()["error"]["param"] == "limit"


def test_unknown_api_urls_answer_in_the_api_shape(alice_api):
    response = alice_api.get("/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"


def test_models_list_and_retrieve(alice_api):
    listed = alice_api.get("/v1/models").json()
    assert listed["object"] == "list"
    by_id = {body["id"]: body for body in listed["data"]}
    assert by_id["tiny-chat"] == {
        "id": "tiny-chat",
        "object": "model",
        "created": by_id["tiny-chat"]["created"],
        "owned_by": "tokenmill",
    }
    assert by_id["all-MiniLM-L6-v2"]["owned_by"] == "sentence-transformers"
    missing = alice_api.get("/v1/models/gpt-9")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    assert (
        missing.json()["error"]["message"]
        == "The model 'gpt-9' does not exist or you do not have access to it."
    )


def test_an_operator_minted_key_acts_as_an_admin_not_as_an_owner(api, acme, alice, bob):
    operator_key = make_key(acme, None, name="bootstrap")  # as create_tenant / create_api_key mint
    client = api(operator_key)
    bob_id = Membership.unscoped.get(user=bob).public_id
    alice_id = Membership.unscoped.get(user=alice).public_id
    promoted = client.patch(f"/api/v1/members/{bob_id}", {"role": "owner"}, format="json")
    assert promoted.status_code == 403
    assert promoted.json()["error"]["code"] == "insufficient_role"
    assert client.delete(f"/api/v1/members/{alice_id}").status_code == 403
    assert (
        client.patch(f"/api/v1/members/{bob_id}", {"role": "admin"}, format="json").status_code
        == 200
    )


def test_a_key_cannot_mint_a_more_powerful_key(api, acme, alice):
    from datetime import timedelta

    from django.utils import timezone

    expires = timezone.now() + timedelta(hours=1)
    limited = make_key(
        acme, alice, scopes=["organization"], expires_at=expires, requests_per_minute=10
    )
    client = api(limited)
    wider = client.post("/api/v1/api-keys", {"name": "x", "scopes": ["models"]}, format="json")
    assert wider.status_code == 403
    assert (
        wider.json()["error"]["message"]
        == "This API key cannot create a key with scopes it does not have: models."
    )
    longer = client.post(
        "/api/v1/api-keys", {"name": "x", "expires_at": "2099-01-01T00:00:00Z"}, format="json"
    )
    assert longer.json()["error"]["code"] == "expiry_escalation"
    faster = client.post(
        "/api/v1/api-keys", {"name": "x", "requests_per_minute": 11}, format="json"
    )
    assert (
        faster.json()["error"]["message"]
        == "requests_per_minute cannot exceed the creating key's own limit (10)."
    )
    inherited = client.post("/api/v1/api-keys", {"name": "x"}, format="json").json()
    assert inherited["scopes"] == ["organization"] and inherited["requests_per_minute"] == 10
    assert inherited["expires_at"] == int(expires.timestamp())


def test_a_limit_too_large_to_store_is_a_400(alice_api):
    response = alice_api.post(
        "/api/v1/api-keys", {"name": "x", "requests_per_minute": 10**20}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "requests_per_minute"


def test_a_nul_in_an_id_is_a_404_not_a_500(alice_api):
    response = alice_api.get("/api/v1/api-keys/key_%00x")
    assert response.status_code == 404
