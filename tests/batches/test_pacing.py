"""Batch lines give way to other traffic on their model servers: alone on a server a run
sends BATCH_CONCURRENCY lines at a time; beside live requests, one at a time."""

import pytest

from tests.batches.conftest import chat_line
from tokenmill.batches.pacing import requests_on_server

VLLM_METRICS = b"""# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny-chat"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="tiny-chat"} 2.0
vllm:num_requests_running_total_bogus not-a-number
vllm:num_preemptions_total{engine="0",model_name="tiny-chat"} 7.0
"""


def test_a_servers_load_is_its_running_and_waiting_requests():
    assert requests_on_server(VLLM_METRICS) == 5
    assert requests_on_server(b"") == 0


def run_batch(backend, upload_batch_file, create_batch, api, alice_key, lines: int) -> dict:
    file_id = upload_batch_file([chat_line(f"req-{i}") for i in range(lines)])
    created = create_batch(file_id)
    assert created.status_code == 200, created.content
    return api(alice_key).get(f"/v1/batches/{created.json()['id']}").json()


@pytest.mark.django_db(transaction=True)
def test_alone_on_its_server_a_batch_sends_its_full_concurrency(
    backend, upload_batch_file, create_batch, api, alice_key, settings, artifact_store
):
    settings.BATCH_CONCURRENCY = 3
    settings.BATCH_PACING_SECONDS = 0.01
    backend.state.first_byte_delay = 1.0  # lines overlap while they run
    body = run_batch(backend, upload_batch_file, create_batch, api, alice_key, lines=6)
    assert body["request_counts"] == {"total": 6, "completed": 6, "failed": 0}
    assert backend.state.peak_in_flight == 3


@pytest.mark.django_db(transaction=True)
def test_beside_other_traffic_a_batch_sends_one_line_at_a_time(
    backend, upload_batch_file, create_batch, api, alice_key, settings, artifact_store
):
    settings.BATCH_CONCURRENCY = 3
    settings.BATCH_PACING_SECONDS = 0.01
    backend.state.first_byte_delay = 1.0
    backend.state.others_in_flight = 1  # a live request the server is working on
    body = run_batch(backend, upload_batch_file, create_batch, api, alice_key, lines=6)
    # Slower, never stalled: every line still ran.
    assert body["request_counts"] == {"total": 6, "completed": 6, "failed": 0}
    assert backend.state.peak_in_flight == 1


@pytest.mark.django_db(transaction=True)
def test_a_server_that_does_not_tell_its_load_counts_as_busy(
    backend, upload_batch_file, create_batch, api, alice_key, settings, artifact_store
):
    settings.BATCH_CONCURRENCY = 3
    settings.BATCH_PACING_SECONDS = 0.01
    settings.BATCH_PACING_TIMEOUT = 0.1
    backend.state.first_byte_delay = 1.0
    backend.state.metrics_delay = 0.5  # a busy server answers /metrics too late
    body = run_batch(backend, upload_batch_file, create_batch, api, alice_key, lines=4)
    assert body["request_counts"] == {"total": 4, "completed": 4, "failed": 0}
    assert backend.state.peak_in_flight == 1
