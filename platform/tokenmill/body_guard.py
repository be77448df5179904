"""The ASGI body guard: refuse a request at its headers, or as its body streams in.

Django's ASGI handler receives a request's whole body (spooled to disk past a
few megabytes) before any middleware or view runs. So a 300 MB body would be read
whole before a 401, a CSRF 403 or a size check. This wrapper sits in front of the
whole application and, before the application reads a byte:

- on /v1 and /api/v1, checks the `Authorization` key (the cached key lookup
  every request makes anyway) and answers 401/403 in OpenAI's shape;
- on those routes but the inference ones (whose gateway admits requests and tokens
  itself), takes one request from the key's and the organization's requests per
  minute, or answers 429; the x-ratelimit-* headers go on the response;
- on the dashboard's upload, checks the session cookie: without a live session of an
  active user the body is held to the form limit, so an anonymous upload is refused
  after little is read (a small one still reaches the view, whose login redirect or
  CSRF 403 answers it);
- refuses a `Content-Length` over the route's limit with a 413;
- counts the bytes of a body as they stream in (chunked bodies have no length)
  and, once the limit is passed, stops reading and answers 413.

Limits per route: uploads (`POST /v1/files`, the dashboard's `POST /datasets/`)
FILE_MAX_BYTES plus the multipart envelope; other API bodies JSON_BODY_MAX_BYTES;
everything else (dashboard forms, the console) DATA_UPLOAD_MAX_MEMORY_SIZE.

`guard_bodies(app)` is the entry point; it wraps any ASGI application (Django, or a
plain handler mounted in front of it), so every route gets the same door.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.core.exceptions import ValidationError
from django.db import connections
from django.http.cookie import parse_cookie
from django.utils.crypto import constant_time_compare

from tenants.keys import KeyRejected, authenticate_key
from tokenmill.api.authentication import BEARER_FORMAT_MESSAGE, bearer_token
from tokenmill.api.errors import MISSING_KEY_MESSAGE, error_body
from tokenmill.api.parsers import body_too_large
from tokenmill.files.services import upload_body_limit, upload_too_large
from tokenmill.metering import gate, limits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: header value -> None when the key is good, else (status, message, code)
KeyCheck = Callable[[str], "tuple[int, str, str] | None"]
#: Cookie header -> whether it names a live session of an active user
SessionCheck = Callable[[str], bool]

API_PREFIXES = ("/v1/", "/api/v1/")
# Admitted by the gateway itself, with their tokens (tokenmill/gateway/admission.py).
INFERENCE_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings"})
LOGIN_TO_UPLOAD_MESSAGE = (
    "You are not logged in, or your session has ended: log in again, then upload the file."
)
UPLOAD_ROUTES = {("POST", "/v1/files"), ("POST", "/datasets/")}


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    code: str | None = None
    param: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    error_type: str | None = None


@dataclass(frozen=True)
class BodyRule:
    limit: int
    api: bool  # authenticate at the headers and answer in OpenAI's shape
    upload: bool
    anonymous: bool = False  # a dashboard upload without a live session

    @property
    def needs_session(self) -> bool:
        return self.upload and not self.api and not self.anonymous

    def for_anonymous(self) -> BodyRule:
        """An upload without a session is held to the form limit: its view reads no more."""
        return BodyRule(
            limit=min(self.limit, settings.DATA_UPLOAD_MAX_MEMORY_SIZE),
            api=self.api,
            upload=self.upload,
            anonymous=True,
        )

    def too_large(self, length: int | None) -> Refusal:
        """The refusal of a body of ``length`` bytes (None: a stream that went past the limit):
        a 413, or for an upload without a session the 403 that says to log in."""
        if self.anonymous:
            return Refusal(403, LOGIN_TO_UPLOAD_MESSAGE, "login_required")
        if self.upload:
            error = upload_too_large(length)
            return Refusal(error.status, error.message, error.code, error.param)
        error = body_too_large(limit=self.limit, kind="JSON" if self.api else "form")
        return Refusal(error.status_code, str(error.detail), error.error_code)


def body_rule(method: str, path: str) -> BodyRule:
    api = path.startswith(API_PREFIXES)
    if (method, path) in UPLOAD_ROUTES:
        return BodyRule(limit=upload_body_limit(), api=api, upload=True)
    if api:
        return BodyRule(limit=settings.JSON_BODY_MAX_BYTES, api=True, upload=False)
    return BodyRule(limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE, api=False, upload=False)


def check_api_key(header: str) -> tuple[int, str, str] | None:
    """The same verdict the API's authentication gives, from the header alone."""
    if not header:
        return 401, MISSING_KEY_MESSAGE, "missing_api_key"
    token = bearer_token(header)
    if token is None:
        return 401, BEARER_FORMAT_MESSAGE, "invalid_api_key"
    try:
        authenticate_key(token)
    except KeyRejected as rejected:
        return rejected.status, rejected.message, rejected.code
    return None


def take_request(header: str) -> Refusal | tuple[tuple[bytes, bytes], ...]:
    """One request from the key's and its organization's minute: a 429, or the headers."""
    token = bearer_token(header)
    try:
        record = authenticate_key(token or "")
    except KeyRejected:
        return ()  # a key the check let through and then revoked: the API answers that
    found = gate.caller_limits(
        tenant_id=record.tenant_id,
        key_id=record.id,
        key_requests=record.requests_per_minute,
        key_tokens=None,
        org_requests=record.org_requests_per_minute,
        org_tokens=0,
    )
    if not found:
        return ()
    verdict = limits.reserve(found)
    headers = verdict.headers if verdict.reservation is not None else gate.refusal_headers(verdict)
    encoded = tuple((name.encode(), value.encode()) for name, value in headers.items())
    if verdict.reservation is None:
        message = gate.refusal_message(verdict, requested=1)
        return Refusal(429, message, "rate_limit_exceeded", headers=encoded, error_type="requests")
    return encoded


def session_is_live(cookie_header: str) -> bool:
    """Whether the session cookie names a live session of an active user, as Django's auth
    would find it (the session's hash included), without changing the session."""
    session_key = parse_cookie(cookie_header).get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return False
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    try:
        user_id = auth.get_user_model()._meta.pk.to_python(session[auth.SESSION_KEY])
        backend_path = session[auth.BACKEND_SESSION_KEY]
        session_hash = session.get(auth.HASH_SESSION_KEY) or ""
    except (KeyError, ValidationError):
        return False
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return False
    user = auth.load_backend(backend_path).get_user(user_id)
    if user is None or not user.is_active:
        return False
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return any(constant_time_compare(session_hash, known) for known in hashes)


def guard_bodies(
    app: ASGIApp, *, check_key: KeyCheck | None = None, check_session: SessionCheck | None = None
) -> ASGIApp:
    """Wrap ``app`` so that no request body is read past what its route allows."""
    # Each check in a worker thread of its own, so requests' checks run side by side rather
    # than queue on the one main thread.
    key_check = sync_to_async(
        _closing_connections(check_key or check_api_key), thread_sensitive=False
    )
    session_check = sync_to_async(
        _closing_connections(check_session or session_is_live), thread_sensitive=False
    )
    request_take = sync_to_async(_closing_connections(take_request), thread_sensitive=False)

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        rule = body_rule(scope["method"], scope["path"])
        headers = dict(scope.get("headers") or [])
        if rule.api:
            verdict = await key_check(headers.get(b"authorization", b"").decode("latin-1"))
            if verdict is not None:
                status, message, code = verdict
                challenge = ((b"www-authenticate", b'Bearer realm="api"'),) if status == 401 else ()
                await _answer(send, Refusal(status, message, code, headers=challenge), api=True)
                return
            if scope["path"].rstrip("/") not in INFERENCE_PATHS:
                taken = await request_take(headers.get(b"authorization", b"").decode("latin-1"))
                if isinstance(taken, Refusal):
                    await _answer(send, taken, api=True)
                    return
                send = _with_headers(send, taken)
        if rule.needs_session:
            cookies = "; ".join(
                value.decode("latin-1")
                for name, value in scope.get("headers") or []
                if name == b"cookie"
            )
            if not await session_check(cookies):
                rule = rule.for_anonymous()
        wants_json = b"application/json" in headers.get(b"accept", b"")
        length = _content_length(headers)
        if length is not None and length > rule.limit:
            await _answer(send, rule.too_large(length), api=rule.api, wants_json=wants_json)
            return
        await _LimitedBody(app, rule, wants_json=wants_json).run(scope, receive, send)

    return guarded


def _with_headers(send: Send, extra: tuple[tuple[bytes, bytes], ...]) -> Send:
    if not extra:
        return send

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


def _closing_connections(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """The key check runs before Django's request cycle, which would close what it opens: a
    cache miss reads the database, in a worker thread, so close that thread's connection here
    rather than leak it."""

    def checked(header: str):
        try:
            return check(header)
        finally:
            connections.close_all()

    return checked


def _content_length(headers: dict[bytes, bytes]) -> int | None:
    try:
        return int(headers[b"content-length"])
    except (KeyError, ValueError):
        return None  # absent (chunked), or malformed: the server or Django answers that


class _LimitedBody:
    """One request: counts body bytes as the app receives them, and cuts it off at the limit."""

    def __init__(self, app: ASGIApp, rule: BodyRule, *, wants_json: bool):
        self.app = app
        self.rule = rule
        self.wants_json = wants_json
        self.received = 0
        self.refused = False
        self.response_started = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def limited_receive() -> Message:
            if self.refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.rule.limit:
                    # Stop reading; to the application the client is gone.
                    self.refused = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            if self.refused and not self.response_started:
                return  # the refusal below answers instead
            if message["type"] == "http.response.start":
                self.response_started = True
            await send(message)

        await self.app(scope, limited_receive, tracked_send)
        if self.refused and not self.response_started:
            await _answer(
                send, self.rule.too_large(None), api=self.rule.api, wants_json=self.wants_json
            )


async def _answer(send: Send, refusal: Refusal, *, api: bool, wants_json: bool = False) -> None:
    if api:
        body = json.dumps(
            error_body(
                refusal.message,
                status_code=refusal.status,
                code=refusal.code,
                param=refusal.param,
                error_type=refusal.error_type,
            )
        ).encode()
        content_type = b"application/json"
    elif wants_json:  # the dashboard's scripts: its form errors' shape
        field = refusal.param or "__all__"
        errors = {field: [{"message": refusal.message, "code": refusal.code or ""}]}
        body = json.dumps({"errors": errors}).encode()
        content_type = b"application/json"
    else:
        body = refusal.message.encode()
        content_type = b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": refusal.status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the unread body is not worth draining
                *refusal.headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
