"""Sending a batch's lines through the gateway's own request path, a few at a time.

Each line is one `proxy.handle` call, as a live request: its model resolved, admitted
(budgets and credits; no per-minute limits for a batch caller), forwarded at vLLM's
batch priority and settled into one usage event of kind `batch`. The request id is
derived from the batch, the run and the line: each request of a line has one usage
event (the ledger counts an event id once).
"""

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings

from tokenmill.batches.lines import ENDPOINTS, Line
from tokenmill.batches.pacing import Pacer
from tokenmill.gateway import proxy, upstream
from tokenmill.gateway.callers import Caller
from tokenmill.gateway.errors import GatewayError

RETRIED_STATUSES = (503, 504)  # overloaded or timed out: worth sending again


@dataclass(frozen=True)
class Result:
    line: Line
    ok: bool
    record: bytes  # the output (or error) file's line, newline included


def line_hash(batch_id: str, number: int) -> str:
    return hashlib.sha256(f"{batch_id}:{number}".encode()).hexdigest()[:32]


def request_id(batch_id: str, number: int, *, run: str, attempt: int) -> str:
    """The line's request id in this run (its usage event's id). A retry is a new request
    with its own event; so is the line sent again by a run that took over from a dead
    one, whose request was billed as lost (what it had reached), as a live one would be."""
    base = f"req_{line_hash(f'{batch_id}:{run}', number)}"
    return base if attempt == 0 else f"{base}_{attempt}"


def answered(batch_id: str, line: Line, *, status: int, rid: str, body: bytes) -> Result:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = {"error": {"message": body.decode("utf-8", "replace")}}
    record = {
        "id": f"batch_req_{line_hash(batch_id, line.number)}",
        "custom_id": line.custom_id,
        "response": {"status_code": status, "request_id": rid, "body": parsed},
        "error": None,
    }
    return Result(line=line, ok=status == 200, record=orjson.dumps(record) + b"\n")


def never_sent(batch_id: str, line: Line, *, code: str, message: str) -> Result:
    record = {
        "id": f"batch_req_{line_hash(batch_id, line.number)}",
        "custom_id": line.custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }
    return Result(line=line, ok=False, record=orjson.dumps(record) + b"\n")


async def send_line(
    batch_id: str, endpoint: str, line: Line, caller: Caller, *, run: str
) -> Result:
    raw = orjson.dumps(line.body)
    attempt = 0
    while True:
        rid = request_id(batch_id, line.number, run=run, attempt=attempt)
        reply = await proxy.handle(
            endpoint=ENDPOINTS[endpoint], raw_body=raw, caller=caller, request_id=rid
        )
        if reply.status not in RETRIED_STATUSES or attempt >= settings.BATCH_LINE_RETRIES:
            return answered(batch_id, line, status=reply.status, rid=rid, body=reply.body)
        attempt += 1
        await asyncio.sleep(min(2**attempt, 30) * float(settings.BATCH_RETRY_SECONDS))


async def run_lines(
    *,
    batch_id: str,
    endpoint: str,
    lines: list[Line],
    caller: Caller | GatewayError,
    stopped: Callable[[], str | None],
    run: str,
) -> list[Result]:
    """Every line's result, at most BATCH_CONCURRENCY in flight, and one while other
    requests share the model's servers (pacing.py). `stopped()` is asked before each
    line is sent: a reason (cancelled, expired) leaves it unsent."""
    gate = asyncio.Semaphore(settings.BATCH_CONCURRENCY)
    pacer = None if isinstance(caller, GatewayError) else Pacer(tenant_id=caller.tenant_id)

    async def one(line: Line) -> Result:
        async with gate:
            if pacer is None:  # the key was revoked, the org on hold, ...: nothing is sent
                return await answer(line)
            token = await pacer.acquire(str(line.body.get("model", "")))
            try:
                return await answer(line)
            finally:
                pacer.release(token)

    async def answer(line: Line) -> Result:
        reason = await sync_to_async(stopped)()
        if reason is not None:
            return never_sent(batch_id, line, code=f"batch_{reason}", message=STOPPED[reason])
        if isinstance(caller, GatewayError):
            return answered(
                batch_id,
                line,
                status=caller.status,
                rid=request_id(batch_id, line.number, run=run, attempt=0),
                body=caller.json_bytes(),
            )
        return await send_line(batch_id, endpoint, line, caller, run=run)

    try:
        return list(await asyncio.gather(*(one(line) for line in lines)))
    finally:
        await upstream.close_current()  # the loop ends with the chunk


STOPPED = {
    "cancelled": "This request was not sent: the batch was cancelled.",
    "expired": "This request was not sent: the batch expired before it ran.",
}
