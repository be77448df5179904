"""Choosing replicas: least outstanding by weight, capacity, adapters, refused connections, health."""

from concurrent.futures import ThreadPoolExecutor

from django.core.cache import cache

from tests.gateway.helpers import chat
from tests.gateway.live import free_port
from tokenmill.catalog.models import Replica
from tokenmill.catalog.services import HEALTH_CACHE_KEY, replica_register
from tokenmill.gateway import health


def _concurrently(call, key, count: int, body=None):
    with ThreadPoolExecutor(count) as pool:
        return list(
            pool.map(lambda _: call(key, "/v1/chat/completions", body or chat()), range(count))
        )


def test_equal_replicas_share_concurrent_requests(backends, call, alice_key):
    first, second = backends(2)
    for server in (first, second):
        server.state.first_byte_delay = 0.3
        replica_register(model_id="tiny-chat", url=server.url)
    responses = _concurrently(call, alice_key, 8)
    assert [r.status_code for r in responses] == [200] * 8
    assert (first.state.served, second.state.served) == (4, 4)


def test_weights_skew_the_share(backends, call, alice_key):
    heavy, light = backends(2)
    for server in (heavy, light):
        server.state.first_byte_delay = 0.4
    replica_register(model_id="tiny-chat", url=heavy.url, weight=3)
    replica_register(model_id="tiny-chat", url=light.url, weight=1)
    responses = _concurrently(call, alice_key, 8)
    assert all(r.status_code == 200 for r in responses)
    assert heavy.state.served >= 5 and light.state.served >= 1
    assert heavy.state.served + light.state.served == 8


def test_max_concurrent_requests_caps_a_replica(backends, call, alice_key):
    (server,) = backends(1)
    server.state.first_byte_delay = 0.5
    replica_register(model_id="tiny-chat", url=server.url, max_concurrent_requests=2)
    responses = _concurrently(call, alice_key, 4)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 503, 503]
    refused = next(r for r in responses if r.status_code == 503).json()["error"]
    assert refused["code"] == "model_overloaded"
    assert refused["message"].startswith("The model 'tiny-chat' is at capacity")
    assert server.state.peak_in_flight == 2


def test_a_refused_connection_is_retried_on_another_replica(backends, call, alice_key):
    (alive,) = backends(1)
    dead_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    replica_register(model_id="tiny-chat", url=dead_url)
    replica_register(model_id="tiny-chat", url=alive.url)
    for _ in range(4):
        response = call(alice_key, "/v1/chat/completions", chat())
        assert response.status_code == 200
    assert alive.state.served == 4


def test_all_replicas_refusing_is_a_503_saying_the_model_is_unavailable(
    transactional_db, call, alice_key
):
    replica_register(model_id="tiny-chat", url=f"http://127.0.0.1:{free_port()}")
    response = call(alice_key, "/v1/chat/completions", chat())
    assert response.status_code == 503
    assert response.json()["error"] == {
        "message": "The model 'tiny-chat' is unavailable right now: none of its replicas "
        "accepted the connection (1 tried). Try again in a few seconds.",
        "type": "server_error",
        "param": None,
        "code": "model_unavailable",
    }


def test_a_model_without_replicas_is_a_503(transactional_db, call, alice_key):
    response = call(alice_key, "/v1/chat/completions", chat())
    assert response.status_code == 503
    assert response.json()["error"]["message"] == (
        "The model 'tiny-chat' is unavailable right now: it has no serving replicas. "
        "Try again in a few seconds."
    )


def test_a_replica_killed_mid_run_sends_new_requests_to_the_other(backends, call, alice_key):
    first, second = backends(2)
    replica_register(model_id="tiny-chat", url=first.url)
    replica_register(model_id="tiny-chat", url=second.url)
    assert all(call(alice_key, "/v1/chat/completions", chat()).status_code == 200 for _ in range(4))
    assert first.state.served == 2 and second.state.served == 2
    first.stop()
    for _ in range(6):
        assert call(alice_key, "/v1/chat/completions", chat()).status_code == 200
    assert second.state.served == 8


def test_health_checks_publish_findings_and_unhealthy_replicas_are_skipped(
    backends, call, alice_key
):
    sick, well = backends(2)
    sick.state.healthy = False
    well.state.adapters = ["ft:tiny-chat:acme:x:abc"]
    replica_register(model_id="tiny-chat", url=sick.url)
    replica_register(model_id="tiny-chat", url=well.url)
    assert health.replicas_check() == {"healthy": 1, "unhealthy": 1}
    rows = {r.url: r for r in Replica.objects.all()}
    assert rows[sick.url].health == "unhealthy"
    assert rows[sick.url].last_error == "/health answered 503"
    assert rows[well.url].health == "healthy"
    assert rows[well.url].adapters == ["ft:tiny-chat:acme:x:abc"]
    assert set(cache.get(HEALTH_CACHE_KEY)) == {str(rows[sick.url].pk), str(rows[well.url].pk)}
    for _ in range(4):
        assert call(alice_key, "/v1/chat/completions", chat()).status_code == 200
    assert (sick.state.served, well.state.served) == (0, 4)


def test_a_fine_tune_prefers_the_replicas_that_hold_its_adapter(
    backends, call, alice_key, fine_tuned
):
    without, holding = backends(2)
    holding.state.adapters = [fine_tuned.model_id]
    replica_register(model_id="tiny-chat", url=without.url)
    replica_register(model_id="tiny-chat", url=holding.url)
    health.replicas_check()
    for _ in range(4):
        response = call(alice_key, "/v1/chat/completions", chat(model=fine_tuned.model_id))
        assert response.status_code == 200, response.text
    assert (without.state.served, holding.state.served) == (0, 4)
    assert holding.state.requests[-1]["body"]["model"] == fine_tuned.model_id
