"""A gateway process killed mid-stream: the sweeper bills what its client had received.

The gateway runs as production runs it (uvicorn, a process of its own) and is killed
with SIGKILL while it relays a stream. Its in-flight record took the stream's usage at
most every METERING_PROGRESS_MS, so what it bills can trail what the client received
by up to one recording period's chunks (plus the chunk being written as it died), and
can never exceed it.
"""

import json
import math
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import httpx

from tests.gateway.helpers import chat
from tests.metering.helpers import ledger_totals
from tests.processes import ROOT, worker_database_url, worker_env
from tokenmill.metering import events
from tokenmill.metering.models import LedgerEntry

PROGRESS_MS = 200
CHUNK_DELAY = 0.05  # four chunks per recording period


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gateway(settings) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = worker_env(
        {
            "DATABASE_URL": worker_database_url(),
            "RATELIMIT_REDIS_URL": settings.RATELIMIT_REDIS_URL,
            "METERING_PROGRESS_MS": str(PROGRESS_MS),
            "DATABASE_POOL": "false",
        }
    )
    # The metering Redis of this test only (none for the embedded default), the cache of
    # the test process: no REDIS_URL, whose metering database would stand in for "none".
    env.pop("REDIS_URL", None)
    if settings.REDIS_CACHE_URL:
        env["REDIS_CACHE_URL"] = settings.REDIS_CACHE_URL
    if not settings.RATELIMIT_REDIS_URL:
        env.pop("RATELIMIT_REDIS_URL")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "tokenmill.asgi:application"),
            *("--port", str(port), "--log-level", "warning", "--lifespan", "on"),
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the gateway did not start"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the gateway did not listen")


def test_a_gateway_killed_mid_stream_is_billed_what_its_client_received(
    store, settings, backend, acme, alice_key
):
    backend.state.chunks = 200
    backend.state.chunk_delay = CHUNK_DELAY
    gateway, url = start_gateway(settings)
    received = 0  # completion tokens of the last event the client read
    killed_at = None
    try:
        body = chat(
            stream=True,
            max_tokens=200,
            stream_options={"include_usage": True, "continuous_usage_stats": True},
        )
        with (
            httpx.Client(timeout=30) as client,
            client.stream(
                "POST",
                url + "/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {alice_key}"},
            ) as response,
        ):
            assert response.status_code == 200
            buffer = ""
            try:
                for text in response.iter_text():
                    buffer += text
                    while "\n\n" in buffer:
                        block, buffer = buffer.split("\n\n", 1)
                        received = json.loads(block[len("data: ") :])["usage"]["completion_tokens"]
                    if killed_at is None and received >= 30:
                        gateway.send_signal(signal.SIGKILL)
                        killed_at = received
                # Past the kill the loop drains what the gateway had already sent.
            except httpx.HTTPError:
                pass  # the connection died with the gateway
    finally:
        if gateway.poll() is None:
            gateway.kill()
        gateway.wait(timeout=20)
    assert killed_at is not None and received < 200  # cut mid-stream
    assert events.inflight_sweep() == 0  # not yet older than any request may take
    assert events.inflight_sweep(older_than=timedelta(0)) == 1
    assert events.inflight_sweep(older_than=timedelta(0)) == 0  # swept once
    billed = ledger_totals(acme)
    assert billed["requests"] == 1
    assert billed["prompt_tokens"] == backend.state.prompt_tokens
    # Recorded at most every PROGRESS_MS: it trails what was received by at most that
    # period's chunks and the one being written; it never bills more than was received.
    period_chunks = math.ceil(PROGRESS_MS / 1000 / CHUNK_DELAY)
    assert received - period_chunks - 1 <= billed["completion_tokens"] <= received
    entry = LedgerEntry.objects.for_tenant(acme).get()
    assert entry.kind == "chat" and entry.model == "tiny-chat"
