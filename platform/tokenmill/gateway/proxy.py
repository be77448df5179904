"""The request path of an inference call, shared by the /v1 handler and the playground.

parse -> check parameters -> resolve the model -> count the prompt -> admit ->
forward to a replica (retrying one that refused the connection) -> pass the answer
back (a stream chunk by chunk) -> settle with the usage the caller was served.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import orjson
from django.conf import settings

from tokenmill.gateway import admission as admission_hook
from tokenmill.gateway import params, routes, tokens, upstream
from tokenmill.gateway.admission import Admission, Outcome, Usage
from tokenmill.gateway.balancer import balancer
from tokenmill.gateway.callers import Caller
from tokenmill.gateway.errors import GatewayError, invalid, model_timeout, model_unavailable
from tokenmill.gateway.routes import ModelRoute, ReplicaRoute
from tokenmill.observability import metrics

UPSTREAM_PATHS = {
    params.CHAT: "/v1/chat/completions",
    params.COMPLETIONS: "/v1/completions",
    params.EMBEDDINGS: "/v1/embeddings",
}
KIND_OF_ENDPOINT = {params.CHAT: "chat", params.COMPLETIONS: "chat", params.EMBEDDINGS: "embedding"}
DONE = b"data: [DONE]\n\n"
JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


@dataclass
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    extra: dict = field(default_factory=dict)


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


def error_reply(error: GatewayError) -> Reply:
    metrics.note_error(error.code, error.error_type)
    headers = [*JSON_HEADERS, *((k.encode(), v.encode()) for k, v in error.headers.items())]
    return Reply(status=error.status, headers=headers, body=error.json_bytes())


def parse_body(raw: bytes) -> dict:
    try:
        body = orjson.loads(raw)  # also refuses lone surrogates and nesting past 1024 levels
    except orjson.JSONDecodeError:
        raise invalid(
            None,
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
            code="invalid_json",
        ) from None
    if not isinstance(body, dict):
        raise invalid(None, "The request body must be a JSON object.", code="invalid_json")
    return body


async def handle(*, endpoint: str, raw_body: bytes, caller: Caller, request_id: str) -> Reply:
    """Answer one inference request; a GatewayError raised before forwarding becomes the reply."""
    try:
        return await _handle(
            endpoint=endpoint, raw_body=raw_body, caller=caller, request_id=request_id
        )
    except GatewayError as error:
        return error_reply(error)


def endpoint_check(endpoint: str, route: ModelRoute) -> None:
    """Refuse a model the endpoint cannot serve (an embedding model for chat, or back)."""
    if route.kind != KIND_OF_ENDPOINT[endpoint]:
        use = "/v1/embeddings" if route.kind == "embedding" else "/v1/chat/completions"
        raise invalid(
            "model",
            f"The model {route.model_id!r} is {'an' if route.kind == 'embedding' else 'a'} "
            f"{route.kind} model and cannot be used with "
            f"{UPSTREAM_PATHS[endpoint]}; use {use}.",
            code="model_not_supported",
        )


async def _handle(*, endpoint: str, raw_body: bytes, caller: Caller, request_id: str) -> Reply:
    prepared = params.PREPARERS[endpoint](parse_body(raw_body))
    route = await routes.resolve_model(tenant_id=caller.tenant_id, model_id=prepared.model)
    metrics.note_model(route.base.model_id)
    endpoint_check(endpoint, route)
    counted = tokens.check_context(prepared, route.base)
    admitted = await admission_hook.admit(
        Admission(
            request_id=request_id,
            caller=caller,
            endpoint=endpoint,
            model=prepared.model,
            base_model=route.base.model_id,
            stream=prepared.stream,
            prompt_tokens=counted,
            max_tokens=prepared.max_tokens,
        )
    )
    body = prepared.body
    if caller.batch:
        body["priority"] = settings.BATCH_PRIORITY
    if prepared.stream:
        body["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
    payload = orjson.dumps(body)
    deadline = time.monotonic() + settings.GATEWAY_TOTAL_TIMEOUT
    try:
        response, replica = await _send(route, endpoint, payload, request_id)
    except GatewayError:
        await _settle(admitted, Usage(), Outcome.FAILED)
        raise
    if response.status != 200:
        try:
            error = await _upstream_error(route, response)
        finally:
            response.release()
            balancer.release(replica)
        await _settle(admitted, Usage(), Outcome.FAILED)
        raise error
    if prepared.stream:
        stream = _relay(response, replica, prepared, admitted, deadline)
        return Reply(status=200, headers=list(SSE_HEADERS), stream=stream)
    return await _whole(response, replica, route, admitted)


async def _send(
    route: ModelRoute, endpoint: str, payload: bytes, request_id: str
) -> tuple[aiohttp.ClientResponse, ReplicaRoute]:
    """Send to the best replica; one that refuses the connection is retried on the next."""
    candidates = balancer.candidates(route, await routes.health())
    refused = 0
    for replica in candidates:
        headers = {"content-type": "application/json", "x-request-id": request_id}
        if replica.api_key:
            headers["authorization"] = f"Bearer {replica.api_key}"
        balancer.acquire(replica)
        try:
            # The session's read timeout is the first-byte timeout (see upstream.py).
            response = await upstream.session().post(
                replica.url + UPSTREAM_PATHS[endpoint], data=payload, headers=headers
            )
        except upstream.NOT_SENT:
            balancer.release(replica)
            balancer.mark_down(replica)
            refused += 1
            continue
        except upstream.STALE:
            balancer.release(replica)
            refused += 1
            continue
        except upstream.READ_TIMEOUT:
            balancer.release(replica)
            raise model_timeout(
                route.model_id,
                f"it did not start answering within {settings.GATEWAY_FIRST_BYTE_TIMEOUT:g} s. "
                "Try again, or ask for fewer tokens.",
            ) from None
        except upstream.FAILED as error:
            balancer.release(replica)
            raise model_unavailable(
                route.model_id, f"its server could not be reached ({type(error).__name__})."
            ) from None
        except BaseException:
            balancer.release(replica)
            raise
        balancer.mark_up(replica)
        return response, replica
    raise model_unavailable(
        route.model_id,
        f"none of its replicas accepted the connection ({refused} tried).",
    )


async def _upstream_error(route: ModelRoute, response: aiohttp.ClientResponse) -> GatewayError:
    """The model server's refusal, in OpenAI's shape with a status the caller can act on."""
    status = response.status
    try:
        raw = await asyncio.wait_for(response.read(), timeout=settings.GATEWAY_FIRST_BYTE_TIMEOUT)
        found = orjson.loads(raw)
    except (orjson.JSONDecodeError, TimeoutError, aiohttp.ClientError):
        found = {}
    detail = found.get("error", found) if isinstance(found, dict) else {}
    if not isinstance(detail, dict):
        detail = {"message": str(detail)}
    message = str(detail.get("message") or f"HTTP {status}")
    if status == 404 and route.fine_tuned:
        return model_unavailable(route.model_id, "it is still being loaded on its replicas.")
    if status in (400, 422):
        param = detail.get("param")
        return GatewayError(
            message,
            status=400,
            code=detail.get("code") if isinstance(detail.get("code"), str) else "invalid_value",
            param=param if isinstance(param, str) else None,
        )
    if status == 503:
        return model_unavailable(route.model_id, "its server is overloaded or starting.")
    return GatewayError(
        f"The model server for {route.model_id!r} failed ({status}): {message}",
        status=502,
        code="upstream_error",
    )


async def _whole(
    response: aiohttp.ClientResponse,
    replica: ReplicaRoute,
    route: ModelRoute,
    admitted: Admission,
) -> Reply:
    try:
        # vLLM sends a whole answer at once, so the read (first-byte) timeout bounds it.
        raw = await response.read()
    except upstream.READ_TIMEOUT:
        await _settle(admitted, Usage(), Outcome.FAILED)
        raise model_timeout(
            route.model_id,
            f"it did not answer within {settings.GATEWAY_FIRST_BYTE_TIMEOUT:g} s. "
            "Try again, or ask for fewer tokens.",
        ) from None
    except upstream.FAILED:
        await _settle(admitted, Usage(), Outcome.FAILED)
        raise model_unavailable(route.model_id, "its server closed the connection.") from None
    finally:
        response.release()
        balancer.release(replica)
    try:
        usage = Usage.from_body(orjson.loads(raw).get("usage")) or Usage()
    except (orjson.JSONDecodeError, AttributeError):
        usage = Usage()
    await _settle(admitted, usage, Outcome.COMPLETED)
    return Reply(status=200, headers=list(JSON_HEADERS), body=raw)


async def _settle(admitted: Admission, usage: Usage, outcome: str) -> None:
    if admitted.settled:
        return
    admitted.settled = True
    metrics.tokens_served(
        admitted.base_model, usage.prompt_tokens, usage.completion_tokens, outcome
    )
    await admission_hook.settle(admitted, usage, outcome=outcome)


async def _relay(
    response: aiohttp.ClientResponse,
    replica: ReplicaRoute,
    prepared: params.Prepared,
    admitted: Admission,
    deadline: float,
) -> AsyncIterator[bytes]:
    """Server-sent events from the replica, chunk by chunk, as the caller asked to see them.

    The replica is always asked for usage on every chunk; the caller sees the final
    usage chunk only with include_usage, and per-chunk usage only with
    continuous_usage_stats. Whatever ends the stream, settle gets the usage of the last
    event the caller received.
    """
    delivered = Usage()  # the usage of the last event the caller received
    final = None  # the model server's last word on usage, shown or not
    outcome = Outcome.CUT
    pending = b""
    try:
        async for raw in response.content.iter_any():
            pending += raw
            while True:
                end = pending.find(b"\n\n")
                if end < 0:
                    break
                event, pending = pending[:end], pending[end + 2 :]
                if event.startswith(b"data: [DONE]"):
                    outcome = Outcome.COMPLETED
                    yield DONE
                    return
                shown, usage, failed = _shape_event(event, prepared)
                final = usage or final
                if shown is not None:
                    yield shown
                    if usage is not None:
                        delivered = usage
                        await admission_hook.progress(admitted, delivered)
                if failed:
                    outcome = Outcome.FAILED
                    yield DONE
                    return
            if time.monotonic() > deadline:
                raise TimeoutError
        outcome = Outcome.FAILED
        yield _stream_error(
            f"The model server for {prepared.model!r} ended the stream early.",
            "upstream_error",
            502,
        )
    except upstream.READ_TIMEOUT:
        outcome = Outcome.FAILED
        yield _stream_error(
            f"The model {prepared.model!r} timed out mid-stream: no new tokens within "
            f"{settings.GATEWAY_FIRST_BYTE_TIMEOUT:g} s, or the whole answer took longer than "
            f"{settings.GATEWAY_TOTAL_TIMEOUT:g} s.",
            "model_timeout",
            504,
        )
    except upstream.FAILED:
        outcome = Outcome.FAILED
        yield _stream_error(
            f"The model server for {prepared.model!r} failed mid-stream; the answer is incomplete.",
            "upstream_error",
            502,
        )
    finally:
        if outcome == Outcome.COMPLETED:
            response.release()  # the connection goes back to the pool
        else:
            response.close()  # hang up, so the model server stops generating
        balancer.release(replica)
        if not admitted.settled:
            if outcome == Outcome.COMPLETED and final is not None:
                delivered = final
            elif delivered == Usage():
                delivered = Usage(prompt_tokens=admitted.prompt_tokens or 0)
            await _settle(admitted, delivered, outcome)


def _stream_error(message: str, code: str, status: int) -> bytes:
    return GatewayError(message, status=status, code=code).sse_bytes() + DONE


def _shape_event(
    event: bytes, prepared: params.Prepared
) -> tuple[bytes | None, Usage | None, bool]:
    """(bytes to send or None, the usage the event carries, whether it is an error)."""
    if not event.startswith(b"data:"):
        return None, None, False  # comments and keep-alives are not forwarded
    try:
        chunk = orjson.loads(event[5:])
    except orjson.JSONDecodeError:
        return None, None, False
    if not isinstance(chunk, dict):
        return None, None, False
    if "error" in chunk:
        return event + b"\n\n", None, True
    if chunk.get("object") == "error":  # older vLLM: the error fields at the top level
        error = GatewayError(
            str(chunk.get("message") or "The model server failed."),
            status=502,
            code="upstream_error",
        )
        return error.sse_bytes(), None, True
    usage = Usage.from_body(chunk.get("usage"))
    if usage is None:
        return event + b"\n\n", None, False
    if not chunk.get("choices"):  # the final usage chunk
        return (event + b"\n\n", usage, False) if prepared.include_usage else (None, usage, False)
    if prepared.continuous_usage:
        return event + b"\n\n", usage, False
    if prepared.include_usage:
        chunk["usage"] = None  # OpenAI's shape: null on every chunk but the last
    else:
        del chunk["usage"]
    shaped = orjson.dumps(chunk)
    return b"data: " + shaped + b"\n\n", usage, False
