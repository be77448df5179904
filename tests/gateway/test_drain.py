"""The web server's drain, with a real server process (`manage.py runweb`) and a stream
in flight: on SIGTERM it refuses new connections at once, lets the stream finish, and
exits; a stream longer than WEB_DRAIN_SECONDS is cut at the deadline."""

import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.gateway.helpers import chat
from tests.gateway.live import free_port
from tests.processes import ROOT, worker_database_url, worker_env

pytestmark = [pytest.mark.django_db(transaction=True)]


class Web:
    """`manage.py runweb` as a container runs it, on the test database."""

    def __init__(self, *, drain_seconds: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {"DATABASE_URL": worker_database_url(), "WEB_DRAIN_SECONDS": str(drain_seconds)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "runweb",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=worker_env(env),
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url + "/v1/models", timeout=2)  # any answer, a 401 too
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the web server did not start") from None
                time.sleep(0.2)

    def refuses_connections(self) -> bool:
        try:
            httpx.get(self.url + "/v1/models", timeout=2)
        except httpx.ConnectError:
            return True
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Stream(threading.Thread):
    """A streamed chat completion read line by line in the background."""

    def __init__(self, url: str, key: str):
        super().__init__(daemon=True)
        self.url, self.key = url, key
        self.lines: list[str] = []
        self.first_chunk = threading.Event()
        self.error: Exception | None = None
        self.ended_at: float | None = None

    def run(self) -> None:
        try:
            with httpx.stream(
                "POST",
                self.url + "/v1/chat/completions",
                json=chat(stream=True),
                headers={"authorization": f"Bearer {self.key}"},
                timeout=60,
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.lines.append(line.removeprefix("data: "))
                        self.first_chunk.set()
        except httpx.HTTPError as error:
            self.error = error
        finally:
            self.ended_at = time.monotonic()
            self.first_chunk.set()

    @property
    def contents(self) -> list[str]:
        return [
            choice["delta"].get("content", "")
            for line in self.lines
            if line != "[DONE]"
            for choice in json.loads(line).get("choices", [])
        ]


@pytest.fixture
def web_server():
    started: list[Web] = []

    def start(**options) -> Web:
        started.append(Web(**options))
        return started[-1]

    yield start
    for web in started:
        web.stop()


def test_sigterm_refuses_new_connections_and_lets_the_stream_finish(backend, web_server, alice_key):
    backend.state.chunk_delay = 0.25  # 16 chunks: a stream of about four seconds
    web = web_server(drain_seconds=30)
    stream = Stream(web.url, alice_key)
    stream.start()
    assert stream.first_chunk.wait(30) and not stream.error, stream.error

    web.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    deadline = signalled + 3
    while not web.refuses_connections():
        assert time.monotonic() < deadline, "new connections were still accepted"
        time.sleep(0.05)
    refused_after = time.monotonic() - signalled
    assert stream.is_alive(), "the stream should still be running while new ones are refused"

    stream.join(30)
    assert stream.error is None, stream.error
    assert stream.lines[-1] == "[DONE]"
    assert len([c for c in stream.contents if c]) == 16  # every token arrived
    # Drained, uvicorn re-raises the signal it caught: the process ends by SIGTERM.
    assert web.process.wait(timeout=15) in (0, -signal.SIGTERM)
    assert stream.ended_at - signalled > refused_after  # the stream outlived the listener
    print(f"web drain: new connections refused after {refused_after:.2f}s")


def test_a_stream_longer_than_the_drain_deadline_is_cut_and_the_server_exits(
    backend, web_server, alice_key
):
    backend.state.chunk_delay = 1.0  # 16 s: far past the deadline
    web = web_server(drain_seconds=2)
    stream = Stream(web.url, alice_key)
    stream.start()
    assert stream.first_chunk.wait(30) and not stream.error, stream.error

    web.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    web.process.wait(timeout=15)
    exited_after = time.monotonic() - signalled
    stream.join(15)
    assert 2 <= exited_after < 8, exited_after
    assert "[DONE]" not in stream.lines  # cut at the deadline, not finished
