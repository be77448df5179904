import pytest
from django.conf import settings as django_settings

from tests.gateway.conftest import asgi_connections, backend, backends, call, gateway  # noqa: F401
from tokenmill.metering import redis_client

# The metering Redis of a run with REDIS_URL (its fourth database), else this one.
FALLBACK_REDIS = "redis://127.0.0.1:6379/7"


def metering_redis_url() -> str:
    return django_settings.RATELIMIT_REDIS_URL or FALLBACK_REDIS


@pytest.fixture(params=["database", "redis"])
def store(request, settings):
    """Each test runs on both: the embedded default (database) and a real Redis."""
    if request.param == "database":
        settings.RATELIMIT_REDIS_URL = ""
        yield "database"
        return
    yield from _use_redis(settings)


@pytest.fixture
def redis_store(settings):
    """A real Redis only: for what the database store does not have (consumer groups)."""
    yield from _use_redis(settings)


def _use_redis(settings):
    url = metering_redis_url()
    settings.RATELIMIT_REDIS_URL = url
    client = redis_client.client()  # the one the code uses, kept for the process
    client.flushdb()
    yield "redis"
    client.flushdb()
