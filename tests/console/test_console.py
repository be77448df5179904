"""The operator console at /console/: staff only, and its actions take effect on the
very next API request (the cached key records are forgotten)."""

import pytest
from django.core.cache import cache
from django.test import Client

from tenants import services
from tenants.keys import key_prefix, record_cache_key
from tenants.models import ApiKey, Membership, Organization, Role, User
from tests.factories import PASSWORD, MembershipFactory, UserFactory, make_key
from tokenmill.catalog.models import BaseModel

ORGANIZATIONS = "/console/tenants/organization/"
MEMBERS = "/console/tenants/membership/"
API_KEYS = "/console/tenants/apikey/"
BASE_MODELS = "/console/catalog/basemodel/"


def rows(response) -> list:
    assert response.status_code == 200, response.content[:500]
    return list(response.context["cl"].result_list)


def api_key_of(plaintext: str) -> ApiKey:
    return ApiKey.unscoped.get(prefix=key_prefix(plaintext))


@pytest.mark.parametrize("path", ["/console/", ORGANIZATIONS, f"{API_KEYS}add/"])
def test_anonymous_visitors_are_sent_to_the_console_login(db, path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/console/login/?next={path}"


def test_tenant_users_who_are_not_staff_are_sent_to_the_console_login(alice):
    client = Client()
    client.force_login(alice)
    response = client.get("/console/")
    assert response.status_code == 302
    assert response["Location"] == "/console/login/?next=/console/"
    # Their password does not open the console either.
    login = client.post(
        "/console/login/?next=/console/", {"username": alice.email, "password": PASSWORD}
    )
    assert login.status_code == 200
    assert b"Please enter the correct e-mail address and password for a staff account" in (
        login.content
    )


def test_staff_sign_in_with_their_email_and_see_the_tenant_pages(operator):
    client = Client()
    login = client.post(
        "/console/login/?next=/console/",
        {"username": "ops@tokenmill.example", "password": PASSWORD},
    )
    assert login.status_code == 302
    assert login["Location"] == "/console/"
    index = client.get("/console/")
    assert index.status_code == 200
    for path in (ORGANIZATIONS, MEMBERS, API_KEYS, BASE_MODELS):
        assert f'href="{path}"'.encode() in index.content


def test_organizations_search_and_filter(console, alice, bob, charlie):
    Organization.objects.filter(slug="globex").update(status=Organization.Status.SUSPENDED)

    assert [o.slug for o in rows(console.get(ORGANIZATIONS))] == ["acme", "globex"]
    active = rows(console.get(ORGANIZATIONS, {"q": "e", "status__exact": "active"}))
    assert [(o.slug, o.member_count) for o in active] == [("acme", 2)]
    by_member = rows(console.get(ORGANIZATIONS, {"q": "charlie@example.com"}))
    assert [o.slug for o in by_member] == ["globex"]
    suspended = rows(console.get(ORGANIZATIONS, {"q": "globex", "status__exact": "suspended"}))
    assert [o.slug for o in suspended] == ["globex"]
    assert rows(console.get(ORGANIZATIONS, {"q": "acme", "status__exact": "suspended"})) == []


def test_members_search_and_filter(console, acme, alice, bob, charlie):
    members = rows(console.get(MEMBERS, {"q": "acme", "role__exact": "member"}))
    assert [(m.user.email, m.tenant.slug) for m in members] == [("bob@example.com", "acme")]
    owners = rows(console.get(MEMBERS, {"role__exact": "owner", "tenant__id__exact": acme.pk}))
    assert [m.user.email for m in owners] == ["alice@example.com"]
    assert [m.user.email for m in rows(console.get(MEMBERS, {"q": "charlie"}))] == [
        "charlie@example.com"
    ]


def test_api_keys_search_and_filter(console, acme, alice_key, bob_key, charlie_key):
    revoked = api_key_of(bob_key)
    services.api_key_revoke(tenant=acme, actor=None, api_key=revoked)

    acme_live = rows(console.get(API_KEYS, {"q": "acme", "revoked_at__isempty": "1"}))
    assert [k.name for k in acme_live] == ["alice's key"]
    acme_revoked = rows(console.get(API_KEYS, {"q": "acme", "revoked_at__isempty": "0"}))
    assert [k.name for k in acme_revoked] == ["bob's key"]
    by_prefix = rows(console.get(API_KEYS, {"q": key_prefix(charlie_key)}))
    assert [k.name for k in by_prefix] == ["charlie's key"]
    by_creator = rows(console.get(API_KEYS, {"q": "bob@example.com", "read_only__exact": "0"}))
    assert [k.name for k in by_creator] == ["bob's key"]


def test_base_models_search_and_filter(console):
    for model_id, status in (("qwen-small", "active"), ("qwen-large", "disabled")):
        BaseModel.objects.create(
            model_id=model_id, display_name=model_id.title(), path=model_id,
            context_length=4096, status=status,
        )  # fmt: skip

    active = rows(console.get(BASE_MODELS, {"q": "qwen", "status__exact": "active"}))
    assert [m.model_id for m in active] == ["qwen-small"]
    disabled = rows(console.get(BASE_MODELS, {"q": "Qwen-L", "status__exact": "disabled"}))
    assert [m.model_id for m in disabled] == ["qwen-large"]
    assert rows(console.get(BASE_MODELS, {"q": "no-such-model"})) == []


def test_suspend_stops_cached_keys_on_the_next_request_and_reactivate_restores_them(
    console, acme, alice_key, api, django_capture_on_commit_callbacks
):
    client = api(alice_key)
    assert client.get("/v1/models").status_code == 200  # the key record is now cached
    # A bare UPDATE leaves the cached record saying "active": what the action must clear.
    Organization.objects.filter(pk=acme.pk).update(status=Organization.Status.SUSPENDED)
    assert client.get("/v1/models").status_code == 200
    Organization.objects.filter(pk=acme.pk).update(status=Organization.Status.ACTIVE)

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(ORGANIZATIONS, {"action": "suspend", "_selected_action": [acme.pk]})
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.status, acme.suspended_reason) == ("suspended", "Suspended by an operator")

    refused = client.get("/v1/models")
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "message": "The organization 'acme' is suspended. Contact support.",
        "type": "permission_error",
        "param": None,
        "code": "organization_suspended",
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(
            ORGANIZATIONS, {"action": "reactivate", "_selected_action": [acme.pk]}
        )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.status, acme.suspended_reason) == ("active", "")
    assert client.get("/v1/models").status_code == 200


def test_suspending_one_organization_leaves_the_others_working(
    console, acme, alice_key, charlie_key, api, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        console.post(ORGANIZATIONS, {"action": "suspend", "_selected_action": [acme.pk]})
    assert api(alice_key).get("/v1/models").status_code == 403
    assert api(charlie_key).get("/v1/models").status_code == 200


def test_revoke_action_refuses_the_key_on_the_next_request(
    console, alice_key, bob_key, api, django_capture_on_commit_callbacks
):
    client = api(alice_key)
    assert client.get("/v1/models").status_code == 200  # cached

    api_key = api_key_of(alice_key)
    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(API_KEYS, {"action": "revoke", "_selected_action": [api_key.pk]})
    assert response.status_code == 302

    refused = client.get("/v1/models")
    assert refused.status_code == 401
    assert refused.json()["error"] == {
        "message": "This API key has been revoked.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert api(bob_key).get("/v1/models").status_code == 200


def edit_scopes_in_the_console(console, api_key: ApiKey, scopes: str):
    change = f"{API_KEYS}{api_key.pk}/change/"
    form = console.get(change).context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if name in form.fields and value is not None
    }
    data.update(scopes=scopes, read_only="", expires_at_0="", expires_at_1="")
    return console.post(change, data)


def test_editing_a_key_in_the_console_applies_to_the_next_request(
    console, alice_key, api, django_capture_on_commit_callbacks
):
    client = api(alice_key)
    assert client.get("/v1/models").status_code == 200  # cached
    api_key = api_key_of(alice_key)

    with django_capture_on_commit_callbacks(execute=True):
        response = edit_scopes_in_the_console(console, api_key, '["files"]')
    assert response.status_code == 302, response.context["adminform"].form.errors

    api_key.refresh_from_db()
    assert api_key.scopes == ["files"]
    refused = client.get("/v1/models")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "missing_scope"


def test_a_key_edit_also_forgets_a_record_cached_before_it_committed(
    console, alice_key, api, django_capture_on_commit_callbacks
):
    client = api(alice_key)
    assert client.get("/v1/models").status_code == 200
    cache_key = record_cache_key(key_prefix(alice_key))
    old_record = cache.get(cache_key)
    assert "models" in old_record["record"]["scopes"]

    with django_capture_on_commit_callbacks(execute=True):
        edit_scopes_in_the_console(console, api_key_of(alice_key), '["files"]')
        # A request that read the key before the edit committed caches the old record.
        cache.set(cache_key, old_record, 300)

    assert client.get("/v1/models").status_code == 403


def test_no_console_page_shows_a_key_hash(console, acme, alice_key):
    api_key = api_key_of(alice_key)
    pages = [
        f"{API_KEYS}{api_key.pk}/change/",
        API_KEYS,
        f"{ORGANIZATIONS}{acme.pk}/change/",
    ]
    for page in pages:
        response = console.get(page)
        assert response.status_code == 200, page
        assert api_key.hashed_key.encode() not in response.content, page
        assert b"hashed_key" not in response.content, page
        assert alice_key.encode() not in response.content, page
    change = console.get(pages[0])
    assert "hashed_key" not in change.context["adminform"].form.fields
    assert api_key.redacted.encode() in console.get(API_KEYS).content


def test_keys_cannot_be_added_in_the_console(console, acme, alice):
    assert console.get(f"{API_KEYS}add/").status_code == 403
    response = console.post(
        f"{API_KEYS}add/",
        {"tenant": acme.pk, "name": "forged", "prefix": "tm-forged000", "hashed_key": "0" * 64},
    )
    assert response.status_code == 403
    assert not ApiKey.unscoped.filter(name="forged").exists()
    assert f'href="{API_KEYS}add/"'.encode() not in console.get(API_KEYS).content
    # Nor through the organization page's inline.
    organization_page = console.get(f"{ORGANIZATIONS}{acme.pk}/change/")
    formsets = {
        f.formset.prefix: f.formset for f in organization_page.context["inline_admin_formsets"]
    }
    assert formsets["api_keys"].max_num == 0


def test_is_staff_without_permissions_sees_no_tenant_pages(db):
    clerk = User.objects.create_user("clerk@tokenmill.example", PASSWORD, is_staff=True)
    client = Client()
    client.force_login(clerk)
    assert client.get("/console/").status_code == 200
    assert client.get(ORGANIZATIONS).status_code == 403
    assert client.get(API_KEYS).status_code == 403


# --- members edited in the console go through the same rules as the dashboard -------


@pytest.fixture
def dana(acme, alice):
    """An admin of acme with a key that manages the organization."""
    user = UserFactory(email="dana@example.com")
    MembershipFactory(tenant=acme, user=user, role=Role.ADMIN)
    return user


@pytest.fixture
def dana_key(acme, dana) -> str:
    return make_key(acme, dana, name="dana's key")


def invite(client, email: str):
    return client.post("/api/v1/invitations", {"email": email}, format="json")


def test_demoting_a_member_in_the_console_applies_to_their_cached_keys(
    console, acme, dana, dana_key, api, django_capture_on_commit_callbacks
):
    client = api(dana_key)
    assert invite(client, "first@example.com").status_code == 201  # cached as an admin's key
    membership = Membership.unscoped.get(user=dana)

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(f"{MEMBERS}{membership.pk}/change/", {"role": "member"})
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == "member"

    refused = invite(client, "second@example.com")
    assert refused.status_code == 403
    # Refused by the key's own (re-read) role, before the service's check of the member.
    assert refused.json()["error"] == {
        "message": "The API key's creator has the member role; this needs admin or above.",
        "type": "permission_error",
        "param": None,
        "code": "insufficient_role",
    }


def test_removing_a_member_in_the_console_revokes_their_keys(
    console, acme, dana, dana_key, api, django_capture_on_commit_callbacks
):
    client = api(dana_key)
    assert client.get("/api/v1/members").status_code == 200  # cached
    membership = Membership.unscoped.get(user=dana)

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(f"{MEMBERS}{membership.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Membership.unscoped.filter(user=dana).exists()

    refused = client.get("/api/v1/members")
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "This API key has been revoked."


def test_the_console_keeps_the_last_owner(console, acme, alice, bob):
    owner = Membership.unscoped.get(user=alice)
    response = console.post(f"{MEMBERS}{owner.pk}/change/", {"role": "admin"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "role": ["The last owner cannot be demoted; make someone else an owner first."]
    }
    assert console.post(f"{MEMBERS}{owner.pk}/delete/", {"post": "yes"}).status_code == 403
    owner.refresh_from_db()
    assert owner.role == "owner"


def test_deleting_a_user_in_the_console_revokes_their_keys(
    console, acme, bob, bob_key, api, django_capture_on_commit_callbacks
):
    client = api(bob_key)
    assert client.get("/v1/models").status_code == 200  # cached

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(f"/console/tenants/user/{bob.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(email="bob@example.com").exists()

    # Its creator gone, the key must not pass for an operator's key: it is revoked.
    refused = client.get("/v1/models")
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "This API key has been revoked."


def test_the_console_does_not_delete_a_last_owner(console, alice, bob):
    assert console.get(f"/console/tenants/user/{alice.pk}/delete/").status_code == 403
    assert console.get(f"/console/tenants/user/{bob.pk}/delete/").status_code == 200
    assert User.objects.filter(pk=alice.pk).exists()
