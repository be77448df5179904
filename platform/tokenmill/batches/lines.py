"""A batch input file, line by line: read it streaming and check each request as the
gateway would check it live (its parameters, model and context), before anything runs.

A line is a JSON object `{"custom_id", "method": "POST", "url", "body"}`; blank lines
are skipped but counted, so errors name the line a text editor shows.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from django.conf import settings

from tokenmill.batches.models import Batch
from tokenmill.gateway import params, routes, tokens
from tokenmill.gateway.errors import GatewayError
from tokenmill.gateway.proxy import endpoint_check

ENDPOINTS = {
    Batch.Endpoint.CHAT: params.CHAT,
    Batch.Endpoint.COMPLETIONS: params.COMPLETIONS,
    Batch.Endpoint.EMBEDDINGS: params.EMBEDDINGS,
}
LINE_FIELDS = {"custom_id", "method", "url", "body"}
CUSTOM_ID_MAX = 512


@dataclass(frozen=True)
class Line:
    number: int  # 1-based line number in the file
    custom_id: str
    body: dict


class LineError(Exception):
    def __init__(self, message: str, *, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param

    def as_error(self, number: int | None) -> dict:
        """OpenAI's shape of one entry of a batch's `errors.data`."""
        return {"code": self.code, "message": self.message, "param": self.param, "line": number}


TOO_LONG = None  # what raw_lines gives for a line past the gateway's body limit


def raw_lines(chunks: Iterator[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) of each non-blank line, holding one line at a time; a line
    longer than a request body may be is skipped unread (its bytes are TOO_LONG)."""
    limit = settings.GATEWAY_MAX_BODY_BYTES
    pending = b""
    number = 0
    skipping = False
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            number += 1
            if skipping:
                skipping = False
                yield number, TOO_LONG
            elif raw.strip():
                yield number, raw if len(raw) <= limit else TOO_LONG
        if len(pending) > limit:
            pending, skipping = b"", True
    if skipping:
        yield number + 1, TOO_LONG
    elif pending.strip():
        yield number + 1, pending if len(pending) <= limit else TOO_LONG


def parse_line(raw: bytes | None, *, endpoint: str) -> Line:
    """The line's request, its shape checked (not yet its model); raises LineError."""
    if raw is TOO_LONG:
        raise LineError(
            f"This line is longer than {settings.GATEWAY_MAX_BODY_BYTES:,} bytes, the most "
            "one request may hold.",
            code="line_too_long",
        )
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise LineError("This line is not valid JSON.", code="invalid_json") from None
    if not isinstance(found, dict):
        raise LineError("Each line must be a JSON object.", code="invalid_json")
    unknown = sorted(set(found) - LINE_FIELDS)
    if unknown:
        raise LineError(
            f"Unknown field {unknown[0]!r}: a line has custom_id, method, url and body.",
            param=unknown[0],
        )
    custom_id = found.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id.strip():
        raise LineError(
            "custom_id must be a non-empty string.", code="missing_custom_id", param="custom_id"
        )
    if len(custom_id) > CUSTOM_ID_MAX:
        raise LineError(f"custom_id may be at most {CUSTOM_ID_MAX} characters.", param="custom_id")
    if found.get("method") != "POST":
        raise LineError(
            f"method must be 'POST', got {found.get('method')!r}.",
            code="invalid_method",
            param="method",
        )
    if found.get("url") != endpoint:
        raise LineError(
            f"url must be the batch's endpoint {endpoint!r}, got {found.get('url')!r}.",
            code="mismatched_url",
            param="url",
        )
    body = found.get("body")
    if not isinstance(body, dict):
        raise LineError("body must be a JSON object.", code="invalid_body", param="body")
    if body.get("stream"):
        raise LineError(
            "Streaming is not supported in a batch: leave out 'stream'.",
            code="invalid_value",
            param="body.stream",
        )
    return Line(number=0, custom_id=custom_id, body=body)


async def check_request(line: Line, *, endpoint: str, tenant_id: int) -> None:
    """The gateway's own checks of the request: parameters, model, context."""
    try:
        prepared = params.PREPARERS[ENDPOINTS[endpoint]](dict(line.body))
        route = await routes.resolve_model(tenant_id=tenant_id, model_id=prepared.model)
        endpoint_check(ENDPOINTS[endpoint], route)
        tokens.check_context(prepared, route.base)
    except GatewayError as error:
        param = f"body.{error.param}" if error.param else "body"
        raise LineError(error.message, code=error.code or "invalid_value", param=param) from None


async def validate(
    chunks: Iterator[bytes], *, endpoint: str, tenant_id: int
) -> tuple[int, list[dict], int]:
    """Check every line: (requests, the first errors listed, how many lines failed)."""
    errors: list[dict] = []
    failed = 0
    seen: set[str] = set()
    count = 0
    for number, raw in raw_lines(chunks):
        count += 1
        if count > settings.BATCH_MAX_REQUESTS:
            errors.append(
                LineError(
                    f"A batch may hold at most {settings.BATCH_MAX_REQUESTS:,} requests.",
                    code="too_many_requests",
                ).as_error(number)
            )
            failed += 1
            break
        try:
            line = parse_line(raw, endpoint=endpoint)
            if line.custom_id in seen:
                raise LineError(
                    f"Duplicate custom_id {line.custom_id!r}: each must be unique in the batch.",
                    code="duplicate_custom_id",
                    param="custom_id",
                )
            seen.add(line.custom_id)
            await check_request(line, endpoint=endpoint, tenant_id=tenant_id)
        except LineError as error:
            failed += 1
            if len(errors) < settings.BATCH_MAX_LISTED_ERRORS:
                errors.append(error.as_error(number))
    if failed > len(errors):
        errors.append(
            LineError(
                f"{failed - len(errors):,} more lines have errors; only the first "
                f"{len(errors):,} are listed.",
                code="too_many_errors",
            ).as_error(None)
        )
    if count == 0:
        errors.append(
            LineError("The input file has no requests.", code="empty_file").as_error(None)
        )
        failed += 1
    return count, errors, failed


def lines(chunks: Iterator[bytes], *, endpoint: str) -> Iterator[Line]:
    """The requests of a validated file, in order, with their line numbers."""
    for number, raw in raw_lines(chunks):
        line = parse_line(raw, endpoint=endpoint)
        yield Line(number=number, custom_id=line.custom_id, body=line.body)
