"""Cached key records: operator keys are explicit, a key never outlives its creator,
and the cache follows every change, even one that races a request."""

import importlib
import threading
from dataclasses import make_dataclass

import pytest
from django.apps import apps
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from tenants import keys, services
from tenants.keys import KeyRecord, KeyRejected, authenticate_key, get_key_record, key_prefix
from tenants.models import ApiKey, Membership, Organization, Role, User
from tests.factories import make_key


def _key_of(plaintext: str) -> ApiKey:
    return ApiKey.objects.for_tenant(_tenant_of(plaintext)).get(prefix=key_prefix(plaintext))


def _tenant_of(plaintext: str) -> Organization:
    return Organization.objects.get(api_keys__prefix=key_prefix(plaintext))


def _error(response) -> dict:
    return response.json()["error"]


# --- operator keys are explicit (item 12) --------------------------------------------


def test_operator_keys_say_so_and_members_keys_do_not(acme, alice, alice_key):
    operator_key = make_key(acme, None, name="bootstrap")
    assert _key_of(operator_key).minted_by_operator is True
    assert _key_of(alice_key).minted_by_operator is False
    assert get_key_record(key_prefix(operator_key)).role == Role.ADMIN


def test_a_key_whose_creator_vanished_is_dead_not_an_admin_key(api, acme, alice, bob, bob_key):
    # A NULL creator reached by any path (a raw update, a restore, a bulk script) used to
    # turn bob's member key into an operator's admin key.
    ApiKey.objects.for_tenant(acme).filter(prefix=key_prefix(bob_key)).update(created_by=None)
    keys.forget_key(key_prefix(bob_key))
    response = api(bob_key).get("/v1/models")
    assert response.status_code == 401
    assert _error(response)["message"] == "This API key has been revoked."


@pytest.mark.parametrize(
    "delete",
    [
        pytest.param(lambda user: user.delete(), id="instance"),
        pytest.param(lambda user: User.objects.filter(pk=user.pk).delete(), id="queryset"),
    ],
)
def test_deleting_a_user_by_any_path_revokes_their_keys(api, acme, alice, bob, bob_key, delete):
    client = api(bob_key)
    assert client.get("/v1/models").status_code == 200  # cached
    bob_key_row = _key_of(bob_key)

    delete(bob)

    bob_key_row.refresh_from_db()
    assert bob_key_row.revoked_at is not None
    assert bob_key_row.created_by is None and not bob_key_row.minted_by_operator
    response = client.get("/v1/models")
    assert response.status_code == 401
    assert _error(response)["message"] == "This API key has been revoked."


def test_the_migration_marks_keys_without_a_creator_as_operators(acme, alice, alice_key):
    operator_key = make_key(acme, None, name="bootstrap")
    ApiKey.objects.for_tenant(acme).update(minted_by_operator=False)  # as before the migration
    migration = importlib.import_module("tenants.migrations.0003_api_key_minted_by_operator")

    migration.mark_operator_keys(apps, None)

    assert _key_of(operator_key).minted_by_operator is True
    assert _key_of(alice_key).minted_by_operator is False


# --- records are safe to cache (item 13) ---------------------------------------------


def test_the_cache_key_carries_the_record_schema():
    assert keys.RECORD_SCHEMA in keys.record_cache_key("tm-abcdefghi")
    wider = make_dataclass("KeyRecord", [("quota", int)], bases=(KeyRecord,), frozen=True)
    assert keys._describe_record(wider) != keys.RECORD_SCHEMA


def test_a_record_an_older_release_cached_is_read_again(acme, alice, alice_key):
    prefix = key_prefix(alice_key)
    record = get_key_record(prefix)
    entry = cache.get(keys.record_cache_key(prefix))
    del entry["record"]["tokens_per_minute"]  # what a release without that field stored
    cache.set(keys.record_cache_key(prefix), entry, 300)
    assert get_key_record(prefix) == record


def test_a_cached_record_reads_no_key_table(acme, alice, alice_key):
    get_key_record(key_prefix(alice_key))
    with CaptureQueriesContext(connection) as queries:
        assert authenticate_key(alice_key).tenant_slug == "acme"
    # Only the cache itself may query (the embedded default's cache is a database table).
    assert not [q["sql"] for q in queries if "tenants_" in q["sql"]]
    assert len(queries) <= 1


def _cached_then(api, plaintext):
    client = api(plaintext)
    assert client.get("/v1/models").status_code == 200  # the record is now cached
    return client


def test_a_deactivation_by_any_path_stops_the_key(api, alice, alice_key):
    client = _cached_then(api, alice_key)
    alice.is_active = False
    alice.save()  # a shell or a script, not the console
    assert client.get("/v1/models").status_code == 401


def test_a_suspension_saved_directly_stops_the_key(api, acme, alice, alice_key):
    client = _cached_then(api, alice_key)
    acme.status = Organization.Status.SUSPENDED
    acme.save()
    assert client.get("/v1/models").status_code == 403


def test_a_renamed_slug_reaches_the_cached_record(api, acme, alice, alice_key):
    _cached_then(api, alice_key)
    acme.slug = "acme-corp"
    acme.save()
    assert get_key_record(key_prefix(alice_key)).tenant_slug == "acme-corp"


def test_a_role_saved_directly_reaches_the_cached_record(api, acme, alice, bob, bob_key):
    _cached_then(api, bob_key)
    membership = Membership.objects.for_tenant(acme).get(user=bob)
    membership.role = Role.VIEWER
    membership.save()
    assert get_key_record(key_prefix(bob_key)).role == Role.VIEWER


def test_a_key_saved_directly_reaches_the_cached_record(api, acme, alice, alice_key):
    client = _cached_then(api, alice_key)
    api_key = _key_of(alice_key)
    api_key.scopes = ["files"]
    api_key.save()
    assert _error(client.get("/v1/models"))["code"] == "missing_scope"


def _tables_read(plaintext: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        authenticate_key(plaintext)
    return [q["sql"] for q in queries if "tenants_" in q["sql"]]


@pytest.mark.parametrize(
    "save",
    [
        pytest.param(lambda org: org.save(), id="save"),
        pytest.param(lambda org: org.save(update_fields=["max_concurrent_jobs"]), id="fields"),
    ],
)
def test_saving_what_no_record_carries_keeps_the_cached_records(api, acme, alice, alice_key, save):
    _cached_then(api, alice_key)
    acme.name = "Acme Rockets"
    acme.max_concurrent_jobs = 5
    save(acme)
    assert _tables_read(alice_key) == []  # still answered from the cache


@pytest.mark.parametrize(
    "save",
    [
        pytest.param(lambda org: org.save(), id="save"),
        pytest.param(lambda org: org.save(update_fields=["status"]), id="fields"),
    ],
)
def test_a_suspension_still_clears_the_cached_records(api, acme, alice, alice_key, save):
    client = _cached_then(api, alice_key)
    acme.status = Organization.Status.SUSPENDED
    save(acme)
    response = client.get("/v1/models")
    assert response.status_code == 403
    assert _error(response)["message"] == "The organization 'acme' is suspended. Contact support."


@pytest.mark.parametrize(
    "remove",
    [
        pytest.param(
            lambda acme, bob: Membership.objects.for_tenant(acme).filter(user=bob).delete(),
            id="queryset",
        ),
        pytest.param(
            lambda acme, bob: Membership.objects.for_tenant(acme).get(user=bob).delete(),
            id="instance",
        ),
    ],
)
def test_a_key_whose_creator_is_no_longer_a_member_is_refused(
    api, acme, alice, bob, bob_key, remove
):
    # Not through the membership service (which revokes the keys): a bare ORM delete
    # used to leave bob's key working as a viewer's.
    client = _cached_then(api, bob_key)
    remove(acme, bob)
    assert get_key_record(key_prefix(bob_key)).revoked is True
    response = client.get("/v1/models")
    assert response.status_code == 401
    assert _error(response)["message"] == "This API key has been revoked."


@pytest.fixture
def shared_cache(settings):
    """The cache the race runs against. Redis when configured; otherwise local memory,
    because SQLite cannot write the database cache from a second connection while the
    first holds its write lock (that would be a lock timeout, not the race under test)."""
    if not settings.REDIS_URL:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    yield
    cache.clear()


def _in_thread(target) -> threading.Thread:
    errors: list[BaseException] = []

    def run():
        try:
            target()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.errors = errors
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stored", ["before the commit", "after the commit"])
def test_a_request_racing_a_deactivation_cannot_cache_active(
    shared_cache, monkeypatch, acme, alice, alice_key, stored
):
    """A request reads the key while the admin's transaction is open (it sees "active"),
    and stores what it read either before or after that transaction commits."""
    prefix = key_prefix(alice_key)
    read, committed = threading.Event(), threading.Event()
    load = keys._load_record

    def load_then_wait(wanted):
        record = load(wanted)
        read.set()
        if stored == "after the commit":
            assert committed.wait(10)
        return record

    monkeypatch.setattr(keys, "_load_record", load_then_wait)
    with transaction.atomic():
        alice.is_active = False
        alice.save()
        request = _in_thread(lambda: get_key_record(prefix))
        assert read.wait(10)
        if stored == "before the commit":
            request.join(10)
    committed.set()
    request.join(10)
    assert not request.errors
    assert not request.is_alive()

    with pytest.raises(KeyRejected, match="revoked"):
        authenticate_key(alice_key)


def test_services_clear_after_commit_too(
    acme, alice, bob, bob_key, django_capture_on_commit_callbacks
):
    prefix = key_prefix(bob_key)
    with django_capture_on_commit_callbacks() as callbacks:
        services.member_change_role(
            tenant=acme,
            actor=Membership.objects.for_tenant(acme).get(user=alice),
            membership=Membership.objects.for_tenant(acme).get(user=bob),
            role=Role.VIEWER,
        )
        get_key_record(prefix)  # a request caching the role the transaction is changing
    assert callbacks, "nothing clears the cache after the commit"
    for callback in callbacks:
        callback()
    assert get_key_record(prefix).role == Role.VIEWER
