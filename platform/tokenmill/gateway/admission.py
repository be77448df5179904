"""The one seam where a request is admitted before it is forwarded, and settled after it ends.

`admit` runs after the request is authenticated, its model resolved and its prompt
counted, and before any byte goes to a model server; it may refuse: the caller's requests and tokens per minute, per key and per
organization, checked and reserved at once (tokenmill.metering.limits), or a 429 with
OpenAI's x-ratelimit-* headers and retry-after. The reservation is the prompt's
tokens plus max_tokens (or the rest of the context when absent). `settle` runs exactly
once per admitted request, when it has ended for any reason, with the usage the
caller was served: the model server's own counts, or for a stream the client cut, the
counts of what was delivered (vLLM's continuous usage stats).

`settle` gives back what the reservation did not use and writes the request's one
usage event (tokenmill.metering.events): the tokens the caller was told. Admission
also records the request as in flight, so a gateway that dies mid-stream still
leaves an event behind (the ledger task's sweeper writes it).

The rate-limit headers of an admitted request reach its response through
`response_headers()` (a context variable of the request's task).
"""

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async

from tokenmill.gateway import params, routes
from tokenmill.gateway.callers import Caller
from tokenmill.gateway.errors import GatewayError
from tokenmill.metering import events, gate, limits, redis_client

logger = logging.getLogger("tokenmill.gateway")


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_body(cls, usage: dict | None) -> "Usage | None":
        if not isinstance(usage, dict):
            return None
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        return cls(prompt, completion, int(usage.get("total_tokens") or prompt + completion))


class Outcome:
    COMPLETED = "completed"  # the caller got the whole answer
    CUT = "cut"  # the caller went away mid-stream: usage is what was delivered
    FAILED = "failed"  # the model server failed or timed out after admission


@dataclass
class Admission:
    request_id: str
    caller: Caller
    endpoint: str
    model: str  # as the caller named it (a base model or an ft: model)
    base_model: str
    stream: bool
    # Our own count before forwarding: exact near the context limit, else an upper bound
    # (see tokens.py); None where this process has no tokenizer for the model.
    prompt_tokens: int | None
    max_tokens: int | None
    admitted_at: float = field(default_factory=time.monotonic)
    settled: bool = False
    reservation: limits.Reservation | None = None


KINDS = {params.CHAT: "chat", params.COMPLETIONS: "completion", params.EMBEDDINGS: "embedding"}
_headers: contextvars.ContextVar[tuple] = contextvars.ContextVar("ratelimit_headers", default=())


def response_headers() -> tuple[tuple[bytes, bytes], ...]:
    """The x-ratelimit-* headers of the request this task admitted (none before)."""
    return _headers.get()


async def _reserved_tokens(admission: Admission) -> int:
    prompt = admission.prompt_tokens or 0
    if admission.endpoint == params.EMBEDDINGS:
        return prompt
    if admission.max_tokens is not None:
        return prompt + admission.max_tokens
    route = await routes.resolve_model(
        tenant_id=admission.caller.tenant_id, model_id=admission.model
    )
    return max(route.base.context_length, prompt)  # the prompt plus the rest of the context


def _event(admission: Admission, usage: Usage, status: str) -> events.Event:
    fine_tuned = admission.model if admission.model != admission.base_model else ""
    return events.Event(
        event_id=admission.request_id,
        tenant_id=admission.caller.tenant_id,
        key_public_id=admission.caller.key_public_id,
        model=admission.base_model,
        fine_tuned_model=fine_tuned,
        kind=KINDS[admission.endpoint],
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        latency_ms=int((time.monotonic() - admission.admitted_at) * 1000),
        status=status,
        at=events.now_iso(),
    )


def _reserve(admission: Admission, tokens: int) -> limits.Verdict:
    caller = admission.caller
    found = gate.caller_limits(
        tenant_id=caller.tenant_id,
        key_id=caller.key_id,
        key_requests=caller.requests_per_minute,
        key_tokens=caller.tokens_per_minute,
        org_requests=caller.org_requests_per_minute,
        org_tokens=caller.org_tokens_per_minute,
    )
    verdict = limits.reserve(found, requests=1, tokens=tokens)
    if verdict.reservation is not None:
        # What is billed if this process dies before settling: the prompt, as counted.
        events.inflight_start(_event(admission, Usage(admission.prompt_tokens or 0), "started"))
    return verdict


async def admit(admission: Admission) -> Admission:
    """Admit the request or raise GatewayError (429) to refuse it."""
    tokens = await _reserved_tokens(admission)
    verdict = await sync_to_async(_reserve)(admission, tokens)
    if verdict.reservation is None:
        requested = 1 if verdict.refused == "requests" else tokens
        raise GatewayError(
            gate.refusal_message(verdict, requested=requested),
            status=429,
            code="rate_limit_exceeded",
            headers=gate.refusal_headers(verdict),
            error_type=verdict.refused,
        )
    admission.reservation = verdict.reservation
    _headers.set(tuple((name.encode(), value.encode()) for name, value in verdict.headers.items()))
    return admission


def _settle(admission: Admission, usage: Usage, outcome: str) -> None:
    # With Redis: the refund and the event in one round trip (one MULTI/EXEC).
    pipe = redis_client.client().pipeline(transaction=True) if redis_client.enabled() else None
    if admission.reservation is not None:
        used = usage.prompt_tokens + usage.completion_tokens
        limits.settle(admission.reservation, tokens=used, pipe=pipe)
    events.event_emit(_event(admission, usage, outcome), pipe=pipe)
    if pipe is not None:
        pipe.execute()


async def _settle_logged(admission: Admission, usage: Usage, outcome: str) -> None:
    try:
        await sync_to_async(_settle)(admission, usage, outcome)
    except Exception:
        # The caller was served; its in-flight record stays, and the sweeper bills it.
        logger.exception("could not settle %s", admission.request_id)


async def settle(admission: Admission, usage: Usage, *, outcome: str) -> None:
    """Record the request's real usage. Called once per admitted request.

    Shielded: a client that hangs up while the stream settles cancels the relay, and
    the settlement still runs to its end.
    """
    await asyncio.shield(asyncio.ensure_future(_settle_logged(admission, usage, outcome)))
    logger.debug(
        "settled %s %s %s: %s prompt + %s completion tokens (%s)",
        admission.request_id,
        admission.endpoint,
        admission.model,
        usage.prompt_tokens,
        usage.completion_tokens,
        outcome,
    )
