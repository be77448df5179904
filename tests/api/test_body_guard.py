"""The ASGI body guard: requests are refused at their headers, or as their body streams in.

Bodies are sent chunk by chunk through a small ASGI harness that counts how many
bytes the application asked for before it answered.
"""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connections

from tests.factories import make_key
from tokenmill.body_guard import guard_bodies
from tokenmill.files.models import File

CHUNK = 64 * 1024
MB = 1024 * 1024


class Harness:
    """One HTTP request to an ASGI app: headers, then a body of ``body_bytes`` in chunks."""

    def __init__(self, app, *, method="POST", path="/v1/files", headers=(), body_bytes=0, body=b""):
        self.app = app
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "server": ("localhost", 80),
            "client": ("127.0.0.1", 50000),
            "headers": [(b"host", b"localhost"), *headers],
        }
        self.body = body
        self.body_bytes = body_bytes or len(body)
        self.consumed = 0
        self.sent: list[dict] = []
        self._finished = False

    async def receive(self):
        if self._finished:
            await asyncio.Event().wait()  # the client stays connected until answered
        if self.body:
            chunk = self.body[self.consumed : self.consumed + CHUNK]
        else:
            chunk = b"x" * min(CHUNK, self.body_bytes - self.consumed)
        self.consumed += len(chunk)
        self._finished = self.consumed >= self.body_bytes
        return {"type": "http.request", "body": chunk, "more_body": not self._finished}

    async def send(self, message):
        self.sent.append(message)

    def run(self) -> "Harness":
        async def main():
            await asyncio.wait_for(self.app(self.scope, self.receive, self.send), timeout=20)

        # A fresh event loop in its own thread: the browser tests leave one running in this thread.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, main()).result()
        return self

    @property
    def status(self) -> int:
        return self.sent[0]["status"]

    @property
    def headers(self) -> dict:
        return dict(self.sent[0]["headers"])

    @property
    def text(self) -> str:
        return b"".join(m.get("body", b"") for m in self.sent[1:]).decode()

    def json(self) -> dict:
        return json.loads(self.text)


def served():
    from tokenmill.asgi import application

    return application


def bearer(key: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {key}".encode())


def length(n: int) -> tuple[bytes, bytes]:
    return (b"content-length", str(n).encode())


MULTIPART = (b"content-type", b"multipart/form-data; boundary=XyZ")


@pytest.fixture
def small_limits(settings):
    settings.FILE_MAX_BYTES = 1 * MB
    settings.JSON_BODY_MAX_BYTES = 256 * 1024
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 512 * 1024
    return settings


def test_an_unauthenticated_300_mb_chunked_upload_is_refused_before_a_byte_is_read(small_limits):
    request = Harness(served(), headers=[MULTIPART], body_bytes=300 * MB).run()
    assert request.status == 401
    assert request.consumed == 0
    assert request.json() == {
        "error": {
            "message": "You didn't provide an API key. Provide it in an Authorization header "
            "using Bearer auth (Authorization: Bearer YOUR_KEY).",
            "type": "invalid_request_error",
            "param": None,
            "code": "missing_api_key",
        }
    }
    assert request.headers[b"www-authenticate"] == b'Bearer realm="api"'


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer tm-" + "A" * 40, "Incorrect API key provided: tm-AAAAAAAAA***AAAA."),
        ("Basic dXNlcjpwdw==", "The Authorization header must read 'Bearer YOUR_KEY'."),
    ],
)
def test_a_bad_key_is_refused_at_the_headers(small_limits, header, message):
    request = Harness(
        served(), headers=[MULTIPART, (b"authorization", header.encode())], body_bytes=300 * MB
    ).run()
    assert request.status == 401
    assert request.consumed == 0
    assert request.json()["error"]["message"].startswith(message)
    assert request.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.django_db(transaction=True)
def test_a_revoked_key_is_refused_at_the_headers(small_limits, acme, alice):
    from tenants import services
    from tenants.models import ApiKey, Membership

    key = make_key(acme, alice)
    services.api_key_revoke(
        tenant=acme,
        actor=Membership.unscoped.get(user=alice),
        api_key=ApiKey.unscoped.get(tenant=acme),
    )
    request = Harness(served(), headers=[MULTIPART, bearer(key)], body_bytes=300 * MB).run()
    assert (request.status, request.consumed) == (401, 0)
    assert request.json()["error"]["message"] == "This API key has been revoked."


@pytest.mark.django_db(transaction=True)
def test_an_authenticated_chunked_upload_stops_being_read_past_the_limit(small_limits, acme, alice):
    key = make_key(acme, alice)
    request = Harness(served(), headers=[MULTIPART, bearer(key)], body_bytes=300 * MB).run()
    assert request.status == 413
    limit = 1 * MB + 64 * 1024  # the file limit and the multipart envelope
    assert limit < request.consumed <= limit + CHUNK
    assert request.json() == {
        "error": {
            "message": "The upload is more than 1,114,112 bytes; a file may be at most 1,048,576 bytes.",
            "type": "invalid_request_error",
            "param": "file",
            "code": "file_too_large",
        }
    }
    assert not File.unscoped.exists()


@pytest.mark.django_db(transaction=True)
def test_an_upload_announced_over_the_limit_is_refused_unread(small_limits, acme, alice):
    key = make_key(acme, alice)
    request = Harness(
        served(), headers=[MULTIPART, bearer(key), length(300 * MB)], body_bytes=300 * MB
    ).run()
    assert (request.status, request.consumed) == (413, 0)
    assert request.json()["error"]["message"] == (
        "The upload is 314,572,800 bytes; a file may be at most 1,048,576 bytes."
    )


@pytest.mark.django_db(transaction=True)
def test_an_upload_within_the_limit_reaches_the_view_whole(
    small_limits, acme, alice, artifact_store, monkeypatch
):
    # Each harness run is a new context, so a persistent connection the view opens would be
    # left behind open: close it at the end of the request, as ASGI deployments should.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    key = make_key(acme, alice)
    content = b"some bytes\n" * 50_000  # 550 KB, several chunks
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="notes.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n" + content + b"\r\n--XyZ--\r\n"
    )
    request = Harness(
        served(), headers=[MULTIPART, bearer(key), length(len(body))], body=body
    ).run()
    assert request.status == 200, request.text
    assert request.consumed == len(body)
    assert request.json()["bytes"] == len(content)
    assert File.unscoped.get().bytes == len(content)


@pytest.mark.django_db(transaction=True)
def test_a_chunked_json_body_over_the_limit_is_a_413_in_openai_shape(small_limits, acme, alice):
    key = make_key(acme, alice)
    json_type = (b"content-type", b"application/json")
    request = Harness(
        served(), path="/v1/fine_tuning/jobs", headers=[json_type, bearer(key)], body_bytes=300 * MB
    ).run()
    assert request.status == 413
    assert 256 * 1024 < request.consumed <= 256 * 1024 + CHUNK
    assert request.json() == {
        "error": {
            "message": "The request body is too large: a JSON body may be at most 262,144 bytes.",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_too_large",
        }
    }

    announced = Harness(
        served(),
        method="PATCH",
        path="/api/v1/organization",
        headers=[json_type, bearer(key), length(300 * MB)],
        body_bytes=300 * MB,
    ).run()
    assert (announced.status, announced.consumed) == (413, 0)


@pytest.mark.django_db(transaction=True)
def test_a_300_mb_body_to_the_login_page_is_not_read_whole(small_limits):
    form = (b"content-type", b"application/x-www-form-urlencoded")
    request = Harness(served(), path="/login/", headers=[form], body_bytes=300 * MB).run()
    assert request.status == 413
    assert 512 * 1024 < request.consumed <= 512 * 1024 + CHUNK
    assert (
        request.text == "The request body is too large: a form body may be at most 524,288 bytes."
    )

    announced = Harness(
        served(), path="/login/", headers=[form, length(300 * MB)], body_bytes=300 * MB
    ).run()
    assert (announced.status, announced.consumed) == (413, 0)


def test_an_unauthenticated_api_read_is_refused_at_the_door(small_limits):
    request = Harness(served(), method="GET", path="/v1/models").run()
    assert request.status == 401
    assert request.json()["error"]["code"] == "missing_api_key"


# --- the guard as a wrapper of any ASGI application -----------------------------------


def echo_app():
    """Reads the whole body, then answers with its size: what Django and most handlers do."""

    async def app(scope, receive, send):
        if scope["type"] != "http":
            await send({"type": "passed-through", "scope": scope["type"]})
            return
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    return app


def always_valid(header: str):
    return None


def logged_in(cookie_header: str) -> bool:
    return True


def test_the_dashboard_dataset_upload_has_the_file_limit(small_limits):
    guarded = guard_bodies(echo_app(), check_key=always_valid, check_session=logged_in)
    within = Harness(guarded, path="/datasets/", headers=[MULTIPART], body_bytes=900 * 1024).run()
    assert (within.status, within.text) == (200, str(900 * 1024))

    over = Harness(guarded, path="/datasets/", headers=[MULTIPART], body_bytes=300 * MB).run()
    assert over.status == 413
    assert over.text == (
        "The upload is more than 1,114,112 bytes; a file may be at most 1,048,576 bytes."
    )
    assert over.consumed <= 1 * MB + 64 * 1024 + CHUNK

    # The upload page's script asks for JSON, and gets its form errors' shape.
    scripted = Harness(
        guarded,
        path="/datasets/",
        headers=[MULTIPART, (b"accept", b"application/json"), length(300 * MB)],
        body_bytes=300 * MB,
    ).run()
    assert (scripted.status, scripted.consumed) == (413, 0)
    assert scripted.json() == {
        "errors": {
            "file": [
                {
                    "message": "The upload is 314,572,800 bytes; a file may be at most 1,048,576 bytes.",
                    "code": "file_too_large",
                }
            ]
        }
    }


def test_bodies_within_their_limit_pass_through_whole(small_limits):
    guarded = guard_bodies(echo_app(), check_key=always_valid)
    request = Harness(guarded, path="/v1/chat/completions", body_bytes=200 * 1024).run()
    assert (request.status, request.text, request.consumed) == (200, str(200 * 1024), 200 * 1024)


def test_a_key_check_runs_for_every_api_route_and_only_there(small_limits):
    seen = []

    def check(header):
        seen.append(header)
        return (401, "no", "invalid_api_key") if header != "Bearer good" else None

    guarded = guard_bodies(echo_app(), check_key=check)
    assert Harness(guarded, path="/v1/chat/completions").run().status == 401
    good = [(b"authorization", b"Bearer good")]
    assert Harness(guarded, path="/api/v1/members", headers=good).run().status == 200
    assert Harness(guarded, path="/login/").run().status == 200
    assert seen == ["", "Bearer good"]


def test_other_connections_pass_through_untouched():
    guarded = guard_bodies(echo_app(), check_key=always_valid)
    sent = []

    async def main():
        async def receive():
            return {"type": "lifespan.startup"}

        async def send(message):
            sent.append(message)

        await guarded({"type": "lifespan"}, receive, send)

    with ThreadPoolExecutor(max_workers=1) as pool:  # as Harness.run: a loop of its own
        pool.submit(asyncio.run, main()).result()
    assert sent == [{"type": "passed-through", "scope": "lifespan"}]


@pytest.mark.django_db(transaction=True)
def test_key_checks_of_concurrent_requests_run_side_by_side(small_limits, acme, alice):
    import time

    from tokenmill.body_guard import check_api_key

    key = make_key(acme, alice)
    used = []

    def slow_check(header):
        time.sleep(0.3)
        verdict = check_api_key(header)  # the real check: cache, then the database
        used.append(connections["default"])
        return verdict

    guarded = guard_bodies(echo_app(), check_key=slow_check)
    requests = [
        Harness(guarded, method="GET", path="/v1/models", headers=[bearer(key)]) for _ in range(8)
    ]

    async def main():
        await asyncio.gather(*(r.app(r.scope, r.receive, r.send) for r in requests))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, main()).result()
    elapsed = time.monotonic() - started
    print(f"8 concurrent key checks of 0.3 s: {elapsed:.2f} s")
    assert [r.status for r in requests] == [200] * 8
    assert elapsed < 4 * 0.3, elapsed  # one after another would take 2.4 s
    # Each worker thread's database connection is closed once its check is done.
    assert len(used) == 8
    assert all(connection.connection is None for connection in used)


# --- dashboard uploads: the session is checked at the headers ---------------------------


def session_cookie(user) -> tuple[bytes, bytes]:
    """The cookies of a browser logged in as ``user``, with a CSRF token to match."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    cookie = f"{settings.SESSION_COOKIE_NAME}={session}; {settings.CSRF_COOKIE_NAME}={CSRF}"
    return (b"cookie", cookie.encode())


CSRF = "a" * 32
SCRIPT = [(b"accept", b"application/json"), (b"x-csrftoken", CSRF.encode())]


@pytest.mark.django_db(transaction=True)
def test_an_anonymous_300_mb_dashboard_upload_is_refused_after_the_form_limit(small_limits):
    request = Harness(served(), path="/datasets/", headers=[MULTIPART], body_bytes=300 * MB).run()
    assert request.status == 403
    assert 512 * 1024 < request.consumed <= 512 * 1024 + CHUNK
    assert request.text == (
        "You are not logged in, or your session has ended: log in again, then upload the file."
    )

    # The upload page's script gets its form errors' shape; an announced length is read not at all.
    scripted = Harness(
        served(),
        path="/datasets/",
        headers=[MULTIPART, *SCRIPT, length(300 * MB), (b"cookie", b"sessionid=nosuchsession")],
        body_bytes=300 * MB,
    ).run()
    assert (scripted.status, scripted.consumed) == (403, 0)
    assert scripted.json() == {
        "errors": {
            "__all__": [
                {
                    "message": "You are not logged in, or your session has ended: log in "
                    "again, then upload the file.",
                    "code": "login_required",
                }
            ]
        }
    }


@pytest.mark.django_db(transaction=True)
def test_a_small_anonymous_dashboard_post_still_gets_the_views_answer(small_limits):
    request = Harness(served(), path="/datasets/", headers=[MULTIPART], body_bytes=1000).run()
    assert request.status == 403  # Django's CSRF refusal: no token, no session
    assert request.consumed == 1000


@pytest.mark.django_db(transaction=True)
def test_a_logged_in_dashboard_upload_goes_through_whole(
    small_limits, acme, alice, artifact_store, monkeypatch
):
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    content = b"some bytes\n" * 80_000  # 880 KB: over the form limit, within the file limit
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="notes.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n" + content + b"\r\n--XyZ--\r\n"
    )
    request = Harness(
        served(),
        path="/datasets/",
        headers=[MULTIPART, *SCRIPT, session_cookie(alice), length(len(body))],
        body=body,
    ).run()
    assert request.status == 201, request.text
    assert request.consumed == len(body)
    assert File.objects.for_tenant(acme).get().bytes == len(content)


@pytest.mark.django_db(transaction=True)
def test_the_session_check_wants_a_live_session_of_an_active_user(acme, alice):
    from tokenmill.body_guard import session_is_live

    cookie = session_cookie(alice)[1].decode()
    assert session_is_live(cookie)
    assert not session_is_live("")
    assert not session_is_live(f"{settings.SESSION_COOKIE_NAME}=nosuchsession")
    alice.is_active = False
    alice.save()
    assert not session_is_live(cookie)
    alice.is_active = True
    alice.set_password("a new password")  # signs every session out, as Django's auth does
    alice.save()
    assert not session_is_live(cookie)
