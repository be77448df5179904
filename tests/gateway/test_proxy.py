"""The request path against fake replicas: answers, streams, usage, errors mid-stream."""

import httpx
import pytest

from tests.gateway.helpers import chat, sse_events


def test_a_chat_completion_passes_through_with_a_request_id(backend, call, alice_key):
    response = call(alice_key, "/v1/chat/completions", chat(temperature=0.5, max_tokens=16))
    assert response.status_code == 200
    assert response.headers["x-request-id"].startswith("req_")
    assert response.json()["choices"][0]["message"]["content"].startswith("t0 t1")
    sent = backend.state.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "tiny-chat"
    assert sent["body"]["temperature"] == 0.5
    assert sent["headers"][b"x-request-id"].decode() == response.headers["x-request-id"]


def test_errors_carry_a_request_id_too(backend, call, alice_key):
    response = call(alice_key, "/v1/chat/completions", chat(temperature=9))
    assert response.status_code == 400
    assert response.headers["x-request-id"].startswith("req_")


def test_a_stream_passes_chunk_by_chunk_and_hides_usage_unless_asked(backend, call, alice_key):
    response = call(alice_key, "/v1/chat/completions", chat(stream=True))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len(chunks) == 16
    assert all("usage" not in chunk for chunk in chunks)
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks).startswith("t0 t1 ")
    # The replica was asked for usage on every chunk all the same.
    assert backend.state.requests[-1]["body"]["stream_options"] == {
        "include_usage": True,
        "continuous_usage_stats": True,
    }


def test_include_usage_shows_the_final_usage_chunk_only(backend, call, alice_key):
    response = call(
        alice_key,
        "/v1/chat/completions",
        chat(stream=True, stream_options={"include_usage": True}),
    )
    chunks = sse_events(response.text)[:-1]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 16, "total_tokens": 23}
    assert all(chunk["usage"] is None for chunk in chunks[:-1])


def test_continuous_usage_stats_are_shown_when_asked(backend, call, alice_key):
    response = call(
        alice_key,
        "/v1/chat/completions",
        chat(stream=True, stream_options={"include_usage": True, "continuous_usage_stats": True}),
    )
    chunks = sse_events(response.text)[:-1]
    assert [c["usage"]["completion_tokens"] for c in chunks[:3]] == [1, 2, 3]


def test_completions_and_embeddings_reach_the_right_paths(backends, call, alice_key):
    from tokenmill.catalog.services import replica_register

    chat_server, embedding_server = backends(2)
    replica_register(model_id="tiny-chat", url=chat_server.url)
    replica_register(model_id="all-MiniLM-L6-v2", url=embedding_server.url)
    completed = call(alice_key, "/v1/completions", {"model": "tiny-chat", "prompt": "Once"})
    assert completed.status_code == 200, completed.text
    assert completed.json()["object"] == "text_completion"
    assert chat_server.state.requests[-1]["body"]["max_tokens"] == 16  # OpenAI's default
    embedded = call(alice_key, "/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": ["a", "b"]})
    assert embedded.status_code == 200, embedded.text
    assert len(embedded.json()["data"]) == 2
    assert embedding_server.state.requests[-1]["path"] == "/v1/embeddings"


def test_a_failure_mid_stream_ends_with_an_error_event_not_a_cut(backend, call, alice_key):
    backend.state.fail_after_chunks = 3
    response = call(alice_key, "/v1/chat/completions", chat(stream=True))
    assert response.status_code == 200
    events = sse_events(response.text)
    assert len(events) == 5
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["code"] == "upstream_error"
    assert events[-2]["error"]["type"] == "server_error"
    assert "failed mid-stream; the answer is incomplete" in events[-2]["error"]["message"]


def test_a_stalled_stream_times_out_with_a_clear_event(backend, call, alice_key, settings):
    settings.GATEWAY_FIRST_BYTE_TIMEOUT = 1
    backend.state.chunk_delay = 0.0
    backend.state.chunks = 3
    # The first chunk comes at once; then the replica stalls for longer than the timeout.
    backend.state.first_byte_delay = 0
    original = backend.app._stream

    async def stalling(send, request, *, chat, gone):
        backend.state.chunk_delay = 1.6
        await original(send, request, chat=chat, gone=gone)

    backend.app._stream = stalling
    response = call(alice_key, "/v1/chat/completions", chat(stream=True))
    events = sse_events(response.text)
    assert events[-2]["error"]["code"] == "model_timeout"
    assert "timed out mid-stream: no new tokens within 1 s" in events[-2]["error"]["message"]


def test_a_slow_first_byte_is_a_504_saying_so(backend, call, alice_key, settings):
    settings.GATEWAY_FIRST_BYTE_TIMEOUT = 1
    backend.state.first_byte_delay = 1.5
    response = call(alice_key, "/v1/chat/completions", chat())
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["code"] == "model_timeout"
    assert error["message"] == (
        "The model 'tiny-chat' timed out: it did not start answering within 1 s. "
        "Try again, or ask for fewer tokens."
    )


@pytest.mark.parametrize(
    ("status", "body", "expected_status", "code", "message"),
    [
        (
            400,
            {
                "error": {
                    "message": "tools need --enable-auto-tool-choice",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                }
            },
            400,
            "invalid_value",
            "tools need --enable-auto-tool-choice",
        ),
        (
            500,
            {"error": {"message": "CUDA exploded"}},
            502,
            "upstream_error",
            "failed (500): CUDA exploded",
        ),
        (503, {}, 503, "model_unavailable", "its server is overloaded or starting"),
    ],
)
def test_a_replica_refusal_becomes_an_openai_error(
    backend, call, alice_key, status, body, expected_status, code, message
):
    backend.state.error_status = status
    backend.state.error_body = body
    response = call(alice_key, "/v1/chat/completions", chat())
    assert response.status_code == expected_status
    error = response.json()["error"]
    assert error["code"] == code
    assert message in error["message"]


def test_only_post_is_allowed(backend, gateway, alice_key):
    response = httpx.get(
        gateway.url + "/v1/chat/completions", headers={"authorization": f"Bearer {alice_key}"}
    )
    assert response.status_code == 405
    assert response.json()["error"]["message"] == (
        "Method GET is not allowed for /v1/chat/completions; use POST."
    )


def test_a_body_over_the_limit_is_a_413(backend, call, alice_key, settings):
    settings.GATEWAY_MAX_BODY_BYTES = 2048
    response = call(alice_key, "/v1/chat/completions", chat("x" * 5000))
    assert response.status_code == 413
    assert response.json()["error"]["message"] == (
        "The request body is larger than the 2,048 bytes this endpoint accepts."
    )


def test_other_urls_still_reach_django(backend, gateway, alice_key):
    response = httpx.get(
        gateway.url + "/v1/models", headers={"authorization": f"Bearer {alice_key}"}
    )
    assert response.status_code == 200
    assert "tiny-chat" in {model["id"] for model in response.json()["data"]}
