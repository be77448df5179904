"""A fast fake OpenAI-compatible model server (a raw ASGI app), for routing, retries,
timeouts, mid-stream failures, cut streams and the benchmark.

It answers like vLLM: /health, /metrics, /v1/models (with LoRA adapters as `parent` entries),
/v1/chat/completions and /v1/completions (streamed with include_usage and
continuous_usage_stats when asked) and /v1/embeddings. A test steers it through
`backend.state`; the benchmark runs it as a process: `python fake_backend.py PORT`.
"""

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field


@dataclass
class State:
    model: str = "tiny-chat"
    adapters: list[str] = field(default_factory=list)
    chunks: int = 16  # completion tokens, one per chunk
    prompt_tokens: int = 7
    healthy: bool = True
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0
    fail_after_chunks: int | None = None  # drop the connection after this many chunks
    error_status: int | None = None  # answer every completion with this status
    error_body: dict | None = None
    requests: list[dict] = field(default_factory=list)
    record: bool = True
    served: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    others_in_flight: int = 0  # requests /metrics reports beside ours (someone else's traffic)
    metrics_delay: float = 0.0
    cancelled: int = 0  # streams whose caller went away before the end


class FakeBackend:
    def __init__(self, state: State | None = None):
        self.state = state or State()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        state = self.state
        if path == "/health":
            await _json(
                send, 200 if state.healthy else 503, {} if state.healthy else {"error": "down"}
            )
            return
        if path == "/metrics":  # vLLM's own Prometheus text, as a scrape sees it
            if state.metrics_delay:
                await asyncio.sleep(state.metrics_delay)
            running = state.in_flight + state.others_in_flight
            text = f'vllm:num_requests_running{{model_name="{state.model}"}} {running}\n'
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain; version=0.0.4")],
                }
            )
            await send({"type": "http.response.body", "body": text.encode()})
            return
        if path == "/v1/models":
            data = [{"id": state.model, "object": "model", "parent": None}] + [
                {"id": name, "object": "model", "parent": state.model} for name in state.adapters
            ]
            await _json(send, 200, {"object": "list", "data": data})
            return
        request = json.loads(body) if body else {}
        if state.record:
            state.requests.append(
                {"path": path, "body": request, "headers": dict(scope["headers"])}
            )
        state.served += 1
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        try:
            if state.first_byte_delay:
                await asyncio.sleep(state.first_byte_delay)
            if state.error_status:
                await _json(
                    send, state.error_status, state.error_body or {"error": {"message": "boom"}}
                )
                return
            if path == "/v1/embeddings":
                inputs = (
                    request["input"] if isinstance(request["input"], list) else [request["input"]]
                )
                data = [
                    {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1)] * 8}
                    for i in range(len(inputs))
                ]
                usage = {"prompt_tokens": state.prompt_tokens, "total_tokens": state.prompt_tokens}
                await _json(
                    send,
                    200,
                    {"object": "list", "data": data, "model": request["model"], "usage": usage},
                )
                return
            chat = path == "/v1/chat/completions"
            if request.get("stream"):
                gone = asyncio.Event()

                async def watch():
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    gone.set()

                watcher = asyncio.create_task(watch())
                try:
                    await self._stream(send, request, chat=chat, gone=gone)
                finally:
                    watcher.cancel()
            else:
                await _json(send, 200, self._whole(request, chat=chat))
        except asyncio.CancelledError:
            state.cancelled += 1
            raise
        finally:
            state.in_flight -= 1

    def _usage(self, completion: int) -> dict:
        prompt = self.state.prompt_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _whole(self, request: dict, *, chat: bool) -> dict:
        text = " ".join(f"t{i}" for i in range(self.state.chunks))
        choice = (
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length",
            }
            if chat
            else {"index": 0, "text": text, "finish_reason": "length"}
        )
        return {
            "id": "chatcmpl-fake" if chat else "cmpl-fake",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": request["model"],
            "choices": [choice],
            "usage": self._usage(self.state.chunks),
        }

    async def _stream(self, send, request: dict, *, chat: bool, gone: asyncio.Event) -> None:
        state = self.state
        options = request.get("stream_options") or {}
        continuous = options.get("continuous_usage_stats")
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        base = {
            "id": "chatcmpl-fake" if chat else "cmpl-fake",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": request["model"],
        }
        for i in range(state.chunks):
            if state.fail_after_chunks is not None and i == state.fail_after_chunks:
                raise ConnectionAbortedError("the fake replica dies mid-stream")
            if state.chunk_delay:
                await asyncio.sleep(state.chunk_delay)
            if gone.is_set():  # like vLLM: a caller that went away stops the generation
                state.cancelled += 1
                return
            last = i == state.chunks - 1
            delta = (
                {
                    "index": 0,
                    "delta": {"content": f"t{i} "},
                    "finish_reason": "length" if last else None,
                }
                if chat
                else {"index": 0, "text": f"t{i} ", "finish_reason": "length" if last else None}
            )
            chunk = {**base, "choices": [delta]}
            if continuous:
                chunk["usage"] = self._usage(i + 1)
            await send({"type": "http.response.body", "body": _event(chunk), "more_body": True})
        if options.get("include_usage"):
            final = {**base, "choices": [], "usage": self._usage(state.chunks)}
            await send({"type": "http.response.body", "body": _event(final), "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def _event(chunk: dict) -> bytes:
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


async def _json(send, status: int, body: dict) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


if __name__ == "__main__":
    import uvicorn

    state = State(record=False, chunks=int(sys.argv[2]) if len(sys.argv) > 2 else 16)
    uvicorn.run(FakeBackend(state), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
