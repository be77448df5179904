"""Real vLLM servers for tests: `vllm_chat` (the demo model, runtime LoRA) and `vllm_embeddings`.

One of each per test session, started in parallel on first use by the same launcher
code `make run` uses, from the demo model cache (MODEL_ROOT). They take a minute or
two to come up on two busy cores; the session pays it once, and the summary at the
end says how long it was. `.process` is the server's Supervisor: `kill()` crashes it
(the supervisor brings it back), `restart()` restarts it, `wait_ready()` waits.
"""

from __future__ import annotations

import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gpu_inference.serving.servers import chat_spec, embedding_spec, supervise
from gpu_inference.serving.supervisor import State, Supervisor, read_tail

READY_TIMEOUT = 900  # seconds; a cold start under load on two cores is slow, never this slow
CHAT_MODEL = "tiny-chat"
_started: dict[str, float] = {}


@dataclass
class VllmServer:
    base_url: str  # http://127.0.0.1:PORT; the OpenAI root is base_url + "/v1"
    model: str  # the served name
    api_key: str
    process: Supervisor
    log_path: Path = field(repr=False)

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> VllmServer:
        status = self.process.wait_for((State.READY, State.FAILED), timeout)
        if status.state != State.READY:
            pytest.fail(
                f"vLLM {self.model} is not ready ({status.state}: {status.reason});"
                f" the end of its log:\n{read_tail(self.log_path, 3000)}"
            )
        return self


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def vllm_servers(demo_model_path, tmp_path_factory):
    """Both servers, started at once; each fixture below waits only for its own."""
    folder = tmp_path_factory.mktemp("vllm")
    api_key = f"vllm-{secrets.token_hex(8)}"
    specs = {
        "chat": chat_spec(
            demo_model_path,
            served_name=CHAT_MODEL,
            port=free_port(),
            max_model_len=256,
            api_key=api_key,
        ),
        "embeddings": embedding_spec(port=free_port(), api_key=api_key),
    }
    _started["at"] = time.monotonic()
    servers = {}
    for name, spec in specs.items():
        supervisor = supervise(f"vllm-{name}", spec, log_dir=folder)
        servers[name] = VllmServer(
            base_url=spec.base_url,
            model=spec.served_name,
            api_key=api_key,
            process=supervisor,
            log_path=supervisor.log_path,
        )
    yield servers
    for server in servers.values():
        server.process.stop()


@pytest.fixture(scope="session")
def vllm_chat(vllm_servers) -> VllmServer:
    return _ready("chat", vllm_servers["chat"])


@pytest.fixture(scope="session")
def vllm_embeddings(vllm_servers) -> VllmServer:
    return _ready("embeddings", vllm_servers["embeddings"])


def _ready(name: str, server: VllmServer) -> VllmServer:
    server.wait_ready()
    # The server's own start-to-ready time (the first one: a later restart does not count).
    _started.setdefault(f"{name} ready", server.process.status.ready_after_seconds or 0.0)
    return server


def pytest_terminal_summary(terminalreporter):
    if "at" not in _started:
        return
    waits = ", ".join(
        f"{key} after {seconds:.0f}s" for key, seconds in _started.items() if key != "at"
    )
    terminalreporter.write_line(f"vLLM fixture (both servers started in parallel): {waits}")
