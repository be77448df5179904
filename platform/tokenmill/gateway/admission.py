"""The one seam where a request is admitted before it is forwarded, and settled after it ends.

`admit` runs after the request is authenticated, its model resolved and its prompt
counted, and before any byte goes to a model server; it may refuse. It reserves, in
one atomic step (tokenmill.metering.limits; with Redis one Lua script, one round trip
on the event loop), the caller's requests and tokens per minute, per key and per
organization, any budget scopes an admission hook adds (tokenmill.metering.hooks:
billing's spend limits and credits), and the request's in-flight record. A rate limit
refuses with a 429 `rate_limit_exceeded`, OpenAI's x-ratelimit-* headers and
retry-after; a budget with a 429 `insufficient_quota`. The token reservation is the
prompt's tokens plus max_tokens (or the rest of the context when absent); a budget's
is the hook's cost of that many tokens.

`settle` runs exactly once per admitted request, when it has ended for any reason,
with the usage the caller was served: the model server's own counts, or for a stream
the client cut, the counts of what was delivered (vLLM's continuous usage stats). In
one step it gives back what the reservation did not use (tokens, and the hook's cost
of what was served), writes the request's one usage event
(tokenmill.metering.events) and drops its in-flight record. A stream's in-flight
record takes the usage delivered so far at most every METERING_PROGRESS_MS
(`progress`), so a gateway that dies mid-stream still leaves an event behind, billed
what it had delivered up to the last record (the ledger task's sweeper writes it).

The rate-limit headers of an admitted request reach its response through
`response_headers()` (a context variable of the request's task).
"""

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass, field

import orjson
from django.conf import settings

from tokenmill.gateway import params, routes
from tokenmill.gateway.callers import Caller
from tokenmill.gateway.errors import GatewayError
from tokenmill.metering import events, gate, hooks, limits

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
    progress_at: float = 0.0  # when the in-flight record last took the stream's usage


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


def usage_kind(admission: Admission) -> str:
    return "batch" if admission.caller.batch else KINDS[admission.endpoint]


def _event(admission: Admission, usage: Usage, status: str) -> events.Event:
    fine_tuned = admission.model if admission.model != admission.base_model else ""
    return events.Event(
        event_id=admission.request_id,
        tenant_id=admission.caller.tenant_id,
        key_public_id=admission.caller.key_public_id,
        model=admission.base_model,
        fine_tuned_model=fine_tuned,
        kind=usage_kind(admission),
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        latency_ms=int((time.monotonic() - admission.admitted_at) * 1000),
        status=status,
        at=events.now_iso(),
    )


async def _scopes(admission: Admission, tokens: int) -> list[limits.Scope]:
    caller = admission.caller
    # Batch lines have no per-minute limits (OpenAI's batch limits are separate): the
    # batch worker's concurrency bounds them.
    found = (
        []
        if caller.batch
        else gate.caller_limits(
            tenant_id=caller.tenant_id,
            key_id=caller.key_id,
            key_requests=caller.requests_per_minute,
            key_tokens=caller.tokens_per_minute,
            org_requests=caller.org_requests_per_minute,
            org_tokens=caller.org_tokens_per_minute,
            tokens=tokens,
        )
    )
    hook = hooks.current()
    if hook is None:
        return found
    extra = await hook.scopes(
        tenant_id=caller.tenant_id, key_id=caller.key_id, model=admission.model
    )
    if not extra:
        return found
    prompt = admission.prompt_tokens or 0
    costs = hook.cost(
        tenant_id=caller.tenant_id,
        model=admission.model,
        prompt_tokens=prompt,
        completion_tokens=max(tokens - prompt, 0),
        kind=usage_kind(admission),
    )
    return found + [scope.with_costs(costs) for scope in extra]


async def admit(admission: Admission) -> Admission:
    """Admit the request or raise GatewayError (429) to refuse it.

    One round trip with Redis: the limits and any hook's budgets are reserved and the
    request recorded as in flight (billed its prompt, as counted, if nothing settles it).
    """
    tokens = await _reserved_tokens(admission)
    scopes = await _scopes(admission, tokens)
    planned = limits.planned(scopes)
    started = _event(admission, Usage(admission.prompt_tokens or 0), "started")
    inflight = limits.Inflight(
        admission.request_id, orjson.dumps(events.inflight_of(started, planned)), time.time()
    )
    verdict = await limits.areserve(scopes, inflight=inflight)
    if verdict.reservation is None:
        requested = 1 if verdict.refused == "requests" else tokens
        code, error_type = gate.refusal_code(verdict)
        raise GatewayError(
            gate.refusal_message(verdict, requested=requested),
            status=429,
            code=code,
            headers=gate.refusal_headers(verdict),
            error_type=error_type,
        )
    admission.reservation = verdict.reservation
    admission.progress_at = time.monotonic()
    _headers.set(tuple((name.encode(), value.encode()) for name, value in verdict.headers.items()))
    return admission


async def progress(admission: Admission, usage: Usage) -> None:
    """A stream delivered `usage` so far: at most every METERING_PROGRESS_MS, that becomes
    what its in-flight record bills if the gateway dies before it settles."""
    now = time.monotonic()
    if now - admission.progress_at < settings.METERING_PROGRESS_MS / 1000:
        return
    admission.progress_at = now
    try:
        await events.inflight_progress(_event(admission, usage, "started"), admission.reservation)
    except Exception:  # the stream goes on; the record keeps what it had
        logger.exception("could not record the progress of %s", admission.request_id)


async def _settle_logged(admission: Admission, usage: Usage, outcome: str) -> None:
    event = _event(admission, usage, outcome)
    used = hooks.used(
        tenant_id=admission.caller.tenant_id,
        model=admission.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        kind=usage_kind(admission),
    )
    try:
        # With Redis one round trip: the refunds, the event, the in-flight record dropped.
        await limits.asettle(
            admission.reservation, used=used, settlement=events.settlement_of(event)
        )
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
