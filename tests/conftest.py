"""Shared fixtures.

Every test gets three people for free: alice (owner of acme), bob (a member of
acme) and charlie (owner of globex, who must see nothing of acme's).
"""

import asyncio

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from rest_framework.test import APIClient

from tenants.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, make_key

# Real vLLM servers (vllm_chat, vllm_embeddings), started on first use; a local S3
# server (s3_server), started on first use or, with ARTIFACT_STORE_URL=s3://..., first.
pytest_plugins = ["tests.vllm", "tests.s3"]

# Password hashing is deliberately slow; tests need no protection from brute force.
django_settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_event_loop_left_by_the_browser(request):
    """Playwright's sync API leaves its event loop marked as running in the main thread
    for the rest of the session, and a later test whose code runs a coroutine with
    async_to_sync (eager Celery tasks, like a batch's validation) would be refused:
    "You cannot use AsyncToSync in the same thread as an async event loop". Outside
    the browser tests, that loop is hidden while the test runs."""
    loop = asyncio.events._get_running_loop()
    if loop is None or "page" in request.fixturenames:
        yield
        return
    asyncio.events._set_running_loop(None)
    try:
        yield
    finally:
        asyncio.events._set_running_loop(loop)


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    # The database cache rolls back with each test; Redis outlives it, so clear it. The
    # cache has a Redis database of its own: the clear (FLUSHDB) leaves the queues alone.
    if settings.REDIS_CACHE_URL:
        cache.clear()
    if settings.RATELIMIT_REDIS_URL:  # rate-limit windows, in-flight requests, usage events
        from tokenmill.metering import redis_client

        redis_client.client().flushdb()


@pytest.fixture
def acme(db):
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def globex(db):
    return OrganizationFactory(name="Globex", slug="globex")


@pytest.fixture
def alice(acme):
    user = UserFactory(email="alice@example.com", first_name="Alice")
    MembershipFactory(tenant=acme, user=user, role=Role.OWNER)
    return user


@pytest.fixture
def bob(acme, alice):
    user = UserFactory(email="bob@example.com", first_name="Bob")
    MembershipFactory(tenant=acme, user=user, role=Role.MEMBER)
    return user


@pytest.fixture
def charlie(globex):
    user = UserFactory(email="charlie@example.com", first_name="Charlie")
    MembershipFactory(tenant=globex, user=user, role=Role.OWNER)
    return user


@pytest.fixture
def alice_key(acme, alice) -> str:
    return make_key(acme, alice, name="alice's key")


@pytest.fixture
def bob_key(acme, bob) -> str:
    return make_key(acme, bob, name="bob's key", scopes=["models", "files", "fine_tuning"])


@pytest.fixture
def charlie_key(globex, charlie) -> str:
    return make_key(globex, charlie, name="charlie's key")


def bearer_client(key: str | None) -> APIClient:
    client = APIClient(SERVER_NAME="localhost")
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def api():
    """`api(key)` gives an API client authenticated with that key."""
    return bearer_client


@pytest.fixture
def alice_api(alice_key):
    return bearer_client(alice_key)


@pytest.fixture
def charlie_api(charlie_key):
    return bearer_client(charlie_key)


@pytest.fixture(autouse=True)
def _celery_mode(request):
    """Tasks run in-process unless a test starts a real worker (`@pytest.mark.worker`)."""
    from workers.celery import app

    eager = request.node.get_closest_marker("worker") is None
    # Tasks are sent by name; running them in-process needs them registered, as a worker has.
    app.loader.import_default_modules()
    app.conf.task_always_eager = eager
    app.conf.task_eager_propagates = eager
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def artifact_store(settings, tmp_path, request):
    """A private artifact store for this test: nothing leaks between tests or into var/.

    A folder under tmp_path, or, when the suite runs on S3 (ARTIFACT_STORE_URL=s3://...),
    a prefix of its own in the test bucket."""
    from tests.s3 import SUITE_ON_S3

    if SUITE_ON_S3:
        settings.ARTIFACT_STORE_URL = request.getfixturevalue("s3_store_url")
    else:
        settings.ARTIFACT_STORE_URL = str(tmp_path / "artifacts")
    settings.ARTIFACT_CACHE_DIR = tmp_path / "artifact-cache"
    from tokenmill.files.storage import get_artifact_store

    return get_artifact_store()


@pytest.fixture(scope="session")
def demo_model_path():
    """The real demo base model, built once into MODEL_ROOT (deterministic, cached)."""
    from django.conf import settings

    from gpu_inference.demo_model import ensure_demo_model

    return ensure_demo_model(settings.MODEL_ROOT)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Seed the catalog once per session too: a reused test database may have been
    emptied by the transactional tests of an earlier run."""
    with django_db_blocker.unblock():
        _seed_catalog()


def _seed_catalog() -> None:
    import importlib

    from django.apps import apps

    importlib.import_module("tokenmill.catalog.migrations.0001_initial").seed_demo_model(apps, None)
    importlib.import_module(
        "tokenmill.catalog.migrations.0002_model_kind_and_replicas"
    ).seed_embedding_model(apps, None)


@pytest.fixture(scope="session", autouse=True)
def _flush_by_delete():
    """Transactional tests empty the tables after each test with DELETE, not TRUNCATE.

    On PostgreSQL, Django's flush is one TRUNCATE of every table, which recreates each
    table's files: 0.5-1 s per transactional test here, against ~0.05 s to delete the few
    rows a test leaves. Every foreign key is DEFERRABLE INITIALLY DEFERRED (Django makes
    them so) and the flush runs in one transaction, so the order of the deletes does not
    matter. A flush that resets sequences or cascades keeps Django's own statement."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade:
            return truncate(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        return [
            f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};"
            for table in tables
        ]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        yield


@pytest.fixture(autouse=True)
def _seeded_catalog(request):
    """Transactional tests flush the tables, data migrations included: seed the catalog again."""
    marker = request.node.get_closest_marker("django_db")
    uses_transactions = {"transactional_db", "live_server"} & set(request.fixturenames)
    if (marker and marker.kwargs.get("transaction")) or uses_transactions:
        request.getfixturevalue("transactional_db")
        _seed_catalog()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """SQLite tests use a file of their own, not memory, so a real worker process can open it.

    One per test session (under pytest's temporary folder): runs side by side never share
    it, as they never shared the in-memory database.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        folder = tmp_path_factory.mktemp("database")
        database.setdefault("TEST", {})["NAME"] = str(folder / "test.sqlite3")
