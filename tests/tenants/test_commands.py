"""`manage.py create_tenant` and `create_api_key`: the operator's way to onboard a tenant.
Both print the new key as the last line, so scripts can take it with `tail -1`."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tenants.models import ApiKey, Membership, Organization, Role, User


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


def test_create_tenant_makes_the_owner_and_prints_a_working_key(db, api):
    lines = run("create_tenant", "acme2", "--owner", "X@Example.com", "--name", "Acme Two")

    key = lines[-1]
    assert key.startswith("tm-")
    organization = Organization.objects.get(slug="acme2")
    assert organization.name == "Acme Two"
    assert lines[0] == f"Created organization acme2 ({organization.public_id})."
    assert lines[1] == (
        "Created user x@example.com; they can sign in after setting a password "
        "(manage.py changepassword)."
    )
    membership = Membership.unscoped.get(tenant=organization)
    assert (membership.user.email, membership.role) == ("x@example.com", Role.OWNER)
    assert not membership.user.has_usable_password()

    response = api(key).get("/v1/models")
    assert response.status_code == 200, response.content
    assert [model["id"] for model in response.json()["data"]] == ["all-MiniLM-L6-v2", "tiny-chat"]
    # The key is the tenant's, not anyone else's.
    assert api(key).get("/api/v1/organization").json()["slug"] == "acme2"


def test_create_tenant_reuses_an_existing_user_as_owner(alice, api):
    lines = run("create_tenant", "acme2", "--owner", "ALICE@example.com", "--key-name", "ci")

    assert not [line for line in lines if line.startswith("Created user")]
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1
    organization = Organization.objects.get(slug="acme2")
    assert Membership.unscoped.get(tenant=organization).user == alice
    assert lines[-2] == "API key 'ci' (shown once, store it now):"
    assert ApiKey.unscoped.get(tenant=organization).name == "ci"
    assert api(lines[-1]).get("/v1/models").status_code == 200


def test_create_tenant_with_a_password_lets_the_owner_sign_in(db):
    lines = run("create_tenant", "acme2", "--owner", "x@example.com", "--password", "pw-12345678")
    assert lines[1] == "Created user x@example.com; they can sign in with the password given."
    assert User.objects.get(email="x@example.com").check_password("pw-12345678")


def test_create_tenant_refuses_a_taken_slug_and_writes_nothing(acme):
    with pytest.raises(CommandError) as raised:
        run("create_tenant", "acme", "--owner", "new@example.com")
    assert str(raised.value) == "The slug 'acme' is taken."
    assert not User.objects.filter(email="new@example.com").exists()
    assert Organization.objects.filter(slug="acme").count() == 1
    assert not ApiKey.unscoped.exists()


def test_create_tenant_refuses_an_invalid_slug(db):
    with pytest.raises(CommandError) as raised:
        run("create_tenant", "Acme Corp", "--owner", "new@example.com")
    assert str(raised.value) == (
        "'acme corp' is not a valid slug: use lowercase letters, digits and hyphens."
    )
    assert not User.objects.exists()


def test_create_tenant_refuses_an_owner_that_is_not_an_email_address(db):
    with pytest.raises(CommandError) as raised:
        run("create_tenant", "acme2", "--owner", "not-an-email")
    assert str(raised.value) == "'not-an-email' is not an e-mail address."
    assert not User.objects.exists()
    assert not Organization.objects.exists()


def test_create_api_key_prints_a_working_operator_key(acme, alice_key, api):
    lines = run("create_api_key", "acme", "--name", "deploy bot")

    key = lines[-1]
    api_key = ApiKey.unscoped.get(name="deploy bot")
    assert lines[0] == f"API key 'deploy bot' ({api_key.public_id}) for acme, shown once:"
    assert api_key.tenant == acme
    assert api_key.created_by is None
    assert api_key.prefix == key[: len(api_key.prefix)]
    assert api_key.last_four == key[-4:]
    assert key not in {api_key.hashed_key, api_key.prefix}

    models = api(key).get("/v1/models")
    assert models.status_code == 200, models.content
    assert [model["id"] for model in models.json()["data"]] == ["all-MiniLM-L6-v2", "tiny-chat"]
    listed = api(key).get("/api/v1/api-keys")
    assert listed.status_code == 200, listed.content
    assert {item["name"] for item in listed.json()["data"]} == {"deploy bot", "alice's key"}


def test_create_api_key_for_an_unknown_slug(db):
    with pytest.raises(CommandError) as raised:
        run("create_api_key", "nope", "--name", "n")
    assert str(raised.value) == "No organization with slug 'nope'."
    assert not ApiKey.unscoped.exists()


def test_create_api_key_refuses_a_blank_name(acme):
    with pytest.raises(CommandError) as raised:
        run("create_api_key", "acme", "--name", "   ")
    assert str(raised.value) == "The key needs a name."


def test_create_api_key_refuses_an_unknown_scope(acme):
    with pytest.raises(CommandError) as raised:
        run("create_api_key", "acme", "--name", "n", "--scope", "admin")
    assert "argument --scope: invalid choice: 'admin'" in str(raised.value)


def test_a_models_only_read_only_key_cannot_manage_keys(acme, api):
    key = run("create_api_key", "acme", "--name", "n", "--scope", "models", "--read-only")[-1]

    api_key = ApiKey.unscoped.get(name="n")
    assert (api_key.scopes, api_key.read_only) == (["models"], True)
    assert api(key).get("/v1/models").status_code == 200
    response = api(key).post("/api/v1/api-keys", {"name": "escalate"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
    assert response.json()["error"]["message"] == (
        "This API key does not have the 'organization' scope needed for /api/v1/api-keys."
    )
    assert ApiKey.unscoped.count() == 1


def test_a_read_only_organization_key_reads_but_cannot_write(acme, api):
    key = run("create_api_key", "acme", "--name", "n", "--scope", "organization", "--read-only")[-1]

    assert api(key).get("/api/v1/api-keys").status_code == 200
    response = api(key).post("/api/v1/api-keys", {"name": "escalate"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {
        "message": "This API key is read-only.",
        "type": "permission_error",
        "param": None,
        "code": "read_only_key",
    }
    assert ApiKey.unscoped.count() == 1
    # Without the models scope, the OpenAI side is closed to it.
    assert api(key).get("/v1/models").json()["error"]["code"] == "missing_scope"
