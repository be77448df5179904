"""The admission and settlement seam: admit before forwarding, settle once with the usage served."""

import pytest

from tests.gateway.helpers import chat, sse_events, stream_lines, wait_for
from tokenmill.gateway import admission
from tokenmill.gateway.errors import GatewayError


@pytest.fixture
def settled(monkeypatch):
    calls = []

    async def record(admitted, usage, *, outcome):
        calls.append((admitted, usage, outcome))

    monkeypatch.setattr(admission, "settle", record)
    return calls


def test_a_non_streamed_call_settles_with_the_usage_in_the_response(
    backend, call, alice_key, settled
):
    response = call(alice_key, "/v1/chat/completions", chat())
    seen = response.json()["usage"]
    admitted, usage, outcome = wait_for(lambda: settled and settled[0], what="settle")
    assert len(settled) == 1
    assert outcome == "completed"
    assert usage == admission.Usage(**seen)
    assert admitted.request_id == response.headers["x-request-id"]
    assert admitted.model == "tiny-chat" and admitted.endpoint == "chat"
    assert admitted.prompt_tokens > 0  # our own count, made before forwarding


def test_a_full_stream_settles_with_the_final_usage_chunk(backend, call, alice_key, settled):
    response = call(
        alice_key, "/v1/chat/completions", chat(stream=True, stream_options={"include_usage": True})
    )
    seen = sse_events(response.text)[-2]["usage"]
    _, usage, outcome = wait_for(lambda: settled and settled[0], what="settle")
    assert (usage, outcome) == (admission.Usage(**seen), "completed")
    assert usage.completion_tokens == 16


def test_a_stream_the_client_cuts_settles_with_what_was_delivered(
    backend, gateway, alice_key, settled
):
    backend.state.chunk_delay = 0.05
    got = stream_lines(
        gateway.url + "/v1/chat/completions",
        alice_key,
        chat(stream=True, stream_options={"include_usage": True, "continuous_usage_stats": True}),
        read_events=4,
    )
    last_seen = got[-1]["usage"]
    assert last_seen["completion_tokens"] == 4
    _, usage, outcome = wait_for(lambda: settled and settled[0], what="settle")
    assert outcome == "cut"
    # Delivered: the four chunks read, or a chunk or two more already on the wire.
    assert 4 <= usage.completion_tokens <= 6
    assert usage.prompt_tokens == last_seen["prompt_tokens"]
    wait_for(lambda: backend.state.cancelled == 1, what="the replica's stream to be stopped")
    assert len(settled) == 1


def test_a_cut_stream_is_settled_even_when_the_caller_never_saw_usage(
    backend, gateway, alice_key, settled
):
    backend.state.chunk_delay = 0.05
    stream_lines(gateway.url + "/v1/chat/completions", alice_key, chat(stream=True), read_events=3)
    _, usage, outcome = wait_for(lambda: settled and settled[0], what="settle")
    assert outcome == "cut"
    assert 3 <= usage.completion_tokens <= 5


def test_a_refusal_at_admission_reaches_no_replica(backend, call, alice_key, monkeypatch, settled):
    async def refuse(admitted):
        raise GatewayError("Rate limit reached.", status=429, code="rate_limit_exceeded")

    monkeypatch.setattr(admission, "admit", refuse)
    response = call(alice_key, "/v1/chat/completions", chat())
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert backend.state.served == 0
    assert settled == []


def test_a_failed_request_is_settled_once_with_no_completion(backend, call, alice_key, settled):
    backend.state.error_status = 500
    call(alice_key, "/v1/chat/completions", chat())
    _, usage, outcome = wait_for(lambda: settled and settled[0], what="settle")
    assert (usage.completion_tokens, outcome) == (0, "failed")
    assert len(settled) == 1
