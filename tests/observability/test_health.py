"""/healthz and /readyz on the live ASGI app: no key, no rate limit, cheap, precise."""

import httpx
import pytest

from tests.factories import make_key
from tokenmill.gateway import health
from tokenmill.observability import endpoints


@pytest.fixture(autouse=True)
def _fresh_readiness(settings):
    settings.READINESS_CACHE_SECONDS = 0
    endpoints.forget_readiness()
    yield
    endpoints.forget_readiness()


def test_liveness_answers_without_a_key(gateway):
    response = httpx.get(gateway.url + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_not_ready_until_a_replica_is_healthy(backend, gateway):
    response = httpx.get(gateway.url + "/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["replicas"]["ok"] is False
    assert "no healthy model replica" in body["checks"]["replicas"]["error"]

    health.replicas_check()
    response = httpx.get(gateway.url + "/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["ready"] is True
    assert response.json()["checks"]["replicas"]["healthy"] == 1


def test_a_replica_that_fails_its_check_makes_the_web_unready(backend, gateway):
    health.replicas_check()
    assert httpx.get(gateway.url + "/readyz").status_code == 200
    backend.state.healthy = False
    health.replicas_check()
    response = httpx.get(gateway.url + "/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["replicas"]["total"] == 1


def test_an_unreachable_redis_is_named(backend, gateway, settings):
    from tests.gateway.live import free_port

    health.replicas_check()
    settings.RATELIMIT_REDIS_URL = f"redis://127.0.0.1:{free_port()}/3"
    response = httpx.get(gateway.url + "/readyz")
    assert response.status_code == 503
    redis_check = response.json()["checks"]["redis"]
    assert redis_check["ok"] is False
    assert redis_check["error"].startswith("ratelimit (redis://127.0.0.1:")


def test_an_unreachable_database_is_named(gateway, monkeypatch):
    def broken() -> dict:
        return {"ok": False, "error": "OperationalError: connection refused"}

    monkeypatch.setattr(endpoints, "_check_database", broken)
    response = httpx.get(gateway.url + "/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is False
    assert "replicas" not in checks  # nothing else is asked of a web without its database


def test_readiness_is_cached_for_a_moment(backend, gateway, settings, monkeypatch):
    settings.READINESS_CACHE_SECONDS = 30
    calls = []
    real = endpoints.readiness_checks
    monkeypatch.setattr(endpoints, "readiness_checks", lambda: calls.append(1) or real())
    for _ in range(5):
        assert httpx.get(gateway.url + "/readyz").status_code == 503
    assert len(calls) == 1


def test_probes_are_not_rate_limited(backend, gateway, acme, alice, settings):
    settings.ORG_REQUESTS_PER_MINUTE = 1
    key = make_key(acme, alice, name="probe neighbour")
    auth = {"authorization": f"Bearer {key}"}
    assert httpx.get(gateway.url + "/v1/models", headers=auth).status_code == 200
    assert httpx.get(gateway.url + "/v1/models", headers=auth).status_code == 429
    for _ in range(3):
        assert httpx.get(gateway.url + "/healthz", headers=auth).status_code == 200
        assert httpx.get(gateway.url + "/readyz", headers=auth).status_code == 503
