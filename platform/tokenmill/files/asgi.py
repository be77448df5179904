"""Refuse an oversized upload at the ASGI door, before its body is received.

Django's ASGI handler receives a request's whole body before any view runs, so
under uvicorn the view's own Content-Length check would come only after the client
had sent (and the server had spooled to disk) every byte. This wrapper answers
`POST /v1/files` with the view's very 413 while the body is still unread.
"""

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tokenmill.api.errors import error_body
from tokenmill.files.services import FileTooLarge, upload_size_check

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

UPLOAD_PATH = "/v1/files"


def refuse_oversized_uploads(app: ASGIApp) -> ASGIApp:
    async def guarded(scope: Scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == UPLOAD_PATH:
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length", b"").decode("latin-1")
            try:
                upload_size_check(content_length=length)
            except FileTooLarge as error:
                await _answer(send, error)
                return
        await app(scope, receive, send)

    return guarded


async def _answer(send, error: FileTooLarge) -> None:
    body = json.dumps(
        error_body(error.message, status_code=error.status, code=error.code, param=error.param)
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the unread body is not worth draining
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
