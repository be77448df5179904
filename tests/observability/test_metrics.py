"""/metrics on the live ASGI app: protected, counting requests, errors, tokens, refusals."""

import httpx

from tests.factories import make_key
from tests.gateway.helpers import chat, sse_events
from tokenmill.gateway import health

CHAT = "/v1/chat/completions"


def test_metrics_are_not_served_without_a_token_setting(gateway, settings):
    settings.METRICS_TOKEN = ""
    response = httpx.get(gateway.url + "/metrics")
    assert response.status_code == 404
    assert "tokenmill_http_requests" not in response.text


def test_metrics_refuse_a_missing_or_wrong_token(gateway, metrics_token):
    for headers in (
        {},
        {"authorization": "Bearer not-the-token"},
        {"authorization": metrics_token},
    ):
        response = httpx.get(gateway.url + "/metrics", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_metrics_token"


def test_a_chat_completion_is_counted_timed_and_its_tokens_added(backend, call, alice_key, scrape):
    before = scrape()
    response = call(alice_key, CHAT, chat(max_tokens=16))
    assert response.status_code == 200
    after = scrape()
    labels = {"route": CHAT, "method": "POST", "status": "200"}
    assert after.value("tokenmill_http_requests_total", **labels) == (
        before.value("tokenmill_http_requests_total", **labels) + 1
    )
    timed = {"route": CHAT, "model": "tiny-chat"}
    assert after.value("tokenmill_http_request_duration_seconds_count", **timed) == (
        before.value("tokenmill_http_request_duration_seconds_count", **timed) + 1
    )
    # The fake replica serves 7 prompt and 16 completion tokens.
    for direction, served in (("prompt", 7), ("completion", 16)):
        assert after.value("tokenmill_tokens_total", model="tiny-chat", direction=direction) == (
            before.value("tokenmill_tokens_total", model="tiny-chat", direction=direction) + served
        )
    outcome = {"model": "tiny-chat", "outcome": "completed"}
    assert after.value("tokenmill_inference_outcomes_total", **outcome) == (
        before.value("tokenmill_inference_outcomes_total", **outcome) + 1
    )


def test_a_stream_is_timed_to_its_end_and_leaves_no_request_outstanding(
    backend, call, alice_key, scrape
):
    backend.state.chunk_delay = 0.02
    before = scrape()
    response = call(alice_key, CHAT, chat(stream=True))
    assert sse_events(response.text)[-1] == "[DONE]"
    after = scrape()
    timed = {"route": CHAT, "model": "tiny-chat"}
    streamed = after.value("tokenmill_http_request_duration_seconds_sum", **timed) - before.value(
        "tokenmill_http_request_duration_seconds_sum", **timed
    )
    assert streamed >= 16 * 0.02  # the whole stream, not its first byte
    replica = str(backend.state and _replica_id())
    assert after.has("tokenmill_replica_outstanding_requests", replica=replica)
    assert after.value("tokenmill_replica_outstanding_requests", replica=replica) == 0


def _replica_id() -> int:
    from tokenmill.catalog.models import Replica

    return Replica.objects.get(base_model__model_id="tiny-chat", enabled=True).pk


def test_errors_are_counted_by_status_and_code(backend, call, alice_key, scrape):
    before = scrape()
    refused = call(alice_key, CHAT, chat(temperature=9))
    assert refused.status_code == 400
    code = refused.json()["error"]["code"]
    unknown = call(alice_key, CHAT, chat(model="no-such-model"))
    assert unknown.status_code == 404
    no_key = call(None, CHAT, chat())
    assert no_key.status_code == 401
    after = scrape()
    for status, error_code in (
        ("400", code),
        ("404", unknown.json()["error"]["code"]),
        ("401", "missing_api_key"),
    ):
        labels = {"route": CHAT, "status": status, "code": error_code}
        assert after.value("tokenmill_http_errors_total", **labels) == (
            before.value("tokenmill_http_errors_total", **labels) + 1
        ), labels
    # An unknown model is counted under no model: callers cannot grow the label set.
    assert not after.has("tokenmill_http_request_duration_seconds_count", model="no-such-model")


def test_rate_limit_refusals_are_counted_by_limit(backend, call, acme, alice, scrape):
    key = make_key(acme, alice, name="one a minute", requests_per_minute=1)
    before = scrape()
    assert call(key, CHAT, chat()).status_code == 200
    refused = call(key, CHAT, chat())
    assert refused.status_code == 429
    after = scrape()
    labels = {"route": CHAT, "limit": "requests"}
    assert after.value("tokenmill_rate_limit_refusals_total", **labels) == (
        before.value("tokenmill_rate_limit_refusals_total", **labels) + 1
    )


def test_django_routes_are_counted_by_pattern_with_a_request_id(gateway, alice_key, scrape):
    before = scrape()
    auth = {"authorization": f"Bearer {alice_key}"}
    listed = httpx.get(gateway.url + "/v1/models", headers=auth)
    assert listed.status_code == 200
    assert listed.headers["x-request-id"].startswith("req_")
    missing = httpx.get(gateway.url + "/v1/files/file-nothere", headers=auth)
    assert missing.status_code == 404
    after = scrape()
    ok = {"route": "/v1/models", "method": "GET", "status": "200"}
    assert after.value("tokenmill_http_requests_total", **ok) == (
        before.value("tokenmill_http_requests_total", **ok) + 1
    )
    # The pattern, never the raw path: ids do not become labels.
    error = {
        "route": "/v1/files/<str:object_id>",
        "status": "404",
        "code": missing.json()["error"]["code"],
    }
    assert after.value("tokenmill_http_errors_total", **error) == (
        before.value("tokenmill_http_errors_total", **error) + 1
    )
    assert "file-nothere" not in after.text


def test_fleet_figures_replicas_queues_and_jobs(backends, gateway, scrape, fine_tuned):
    from tokenmill.catalog import services as catalog_services

    up, down = backends(2)
    down.state.healthy = False
    first = catalog_services.replica_register(model_id="tiny-chat", url=up.url)
    second = catalog_services.replica_register(model_id="tiny-chat", url=down.url)
    health.replicas_check()
    found = scrape()
    assert (
        found.value("tokenmill_replica_healthy", replica=str(first.pk), base_model="tiny-chat") == 1
    )
    assert found.has("tokenmill_replica_healthy", replica=str(second.pk))
    assert found.value("tokenmill_replica_healthy", replica=str(second.pk)) == 0
    for queue in ("default", "gpu", "control"):
        assert found.has("tokenmill_queue_depth", queue=queue)
    assert found.value("tokenmill_fine_tuning_jobs", status="succeeded") >= 1
    assert found.has("tokenmill_fine_tuning_jobs", status="running")


def test_model_servers_metrics_as_targets_and_passed_through(backend, gateway, metrics_token):
    auth = {"authorization": f"Bearer {metrics_token}"}
    targets = httpx.get(gateway.url + "/metrics/targets", headers=auth).json()
    host = backend.url.removeprefix("http://")
    (target,) = [entry for entry in targets if entry["targets"] == [host]]
    assert target["labels"]["__metrics_path__"] == "/metrics"
    assert target["labels"]["base_model"] == "tiny-chat"
    replica = target["labels"]["replica"]
    passed = httpx.get(gateway.url + f"/metrics/replicas/{replica}", headers=auth)
    assert passed.status_code == 200
    assert passed.text.startswith("vllm:num_requests_running")
    missing = httpx.get(gateway.url + "/metrics/replicas/999999", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "replica_not_found"
    assert httpx.get(gateway.url + f"/metrics/replicas/{replica}").status_code == 401
