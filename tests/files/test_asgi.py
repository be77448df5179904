"""Under uvicorn, an oversized upload is refused before its body is received."""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tokenmill.files.asgi import refuse_oversized_uploads


def call(app, *, method="POST", path="/v1/files", content_length: int | None = None) -> list:
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    sent = []

    async def receive():
        raise AssertionError("the body was read")

    async def send(message):
        sent.append(message)

    # A fresh event loop in its own thread: the browser tests leave one running in this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    return sent


async def inner(scope, receive, send):
    await send({"type": "passed-through"})


@pytest.fixture(autouse=True)
def limit(settings):
    settings.FILE_MAX_BYTES = 1000


def test_the_served_application_is_guarded():
    from tokenmill.asgi import application

    start, body = call(application, content_length=10 * 1024**3)
    assert start["status"] == 413
    assert json.loads(body["body"]) == {
        "error": {
            "message": "The upload is 10,737,418,240 bytes; a file may be at most 1,000 bytes.",
            "type": "invalid_request_error",
            "param": "file",
            "code": "file_too_large",
        }
    }
    assert (b"content-type", b"application/json") in start["headers"]


@pytest.mark.parametrize(
    ("method", "path", "content_length"),
    [
        ("POST", "/v1/files", 2000),  # over the file limit, but within the multipart allowance
        ("POST", "/v1/files", None),
        ("POST", "/v1/files/file-abc", 10**12),
        ("GET", "/v1/files", 10**12),
        ("POST", "/v1/chat/completions", 10**12),
    ],
)
def test_everything_else_goes_through(method, path, content_length):
    guarded = refuse_oversized_uploads(inner)
    assert call(guarded, method=method, path=path, content_length=content_length) == [
        {"type": "passed-through"}
    ]
