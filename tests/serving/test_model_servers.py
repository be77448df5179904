"""What `make run` does with model servers (runplatform's ModelServers), on fake vLLMs."""

import os
import sys
import time
from pathlib import Path

import pytest

from tests.serving.test_supervisor import alive
from tokenmill.catalog.models import Replica
from workers.model_servers import ModelServers

pytestmark = pytest.mark.django_db

FAKE_VLLM = Path(__file__).with_name("fake_vllm.py")


@pytest.fixture
def fake_vllm_python(tmp_path, monkeypatch, settings):
    """A vLLM environment whose python runs fake_vllm.py, on ports of this test's own."""
    python = tmp_path / "fake-venv" / "python"
    python.parent.mkdir()
    python.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_VLLM} "$@"\n')
    python.chmod(0o755)
    (tmp_path / "bundled-model").mkdir()
    monkeypatch.setenv("VLLM_PYTHON", str(python))
    monkeypatch.setenv("FAKE_VLLM_MODEL_DIR", str(tmp_path / "bundled-model"))
    settings.MODEL_SERVER_PORT = 20000 + os.getpid() % 20000
    return python


def wait_for_line(lines: list[str], start: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [line for line in lines if line.startswith(start)]
        if found:
            return found[0]
        time.sleep(0.05)
    pytest.fail(f"no line starting with {start!r} in {lines}")


def test_make_run_serves_each_base_model_registers_it_and_stops_it_all(
    fake_vllm_python, artifact_store, demo_model_path, tmp_path, settings
):
    lines: list[str] = []
    servers = ModelServers(write=lines.append, root=Path(settings.BASE_DIR), var=tmp_path / "var")
    try:
        servers.start()
        chat_port, embedding_port = settings.MODEL_SERVER_PORT, settings.MODEL_SERVER_PORT + 1
        assert wait_for_line(lines, "Model tiny-chat is ready on ").startswith(
            f"Model tiny-chat is ready on http://127.0.0.1:{chat_port} after "
        )
        wait_for_line(
            lines, f"Model all-MiniLM-L6-v2 is ready on http://127.0.0.1:{embedding_port}"
        )
        replicas = {r.base_model.model_id: r for r in Replica.objects.select_related("base_model")}
        assert replicas["tiny-chat"].url == f"http://127.0.0.1:{chat_port}"
        assert replicas["all-MiniLM-L6-v2"].url == f"http://127.0.0.1:{embedding_port}"
        assert replicas["tiny-chat"].api_key == servers.api_key != ""
        # The chat model gets a serving agent and a published (empty) manifest.
        assert artifact_store.exists("serving/manifests/tiny-chat.json")
        assert set(servers.agents) == {"tiny-chat"}
        pids = [s.pid for s in servers.supervisors] + [p.pid for _, _, p in servers.agents.values()]
        assert all(alive(pid) for pid in pids)
    finally:
        servers.stop()
    assert not any(alive(pid) for pid in pids)


def test_without_vllm_the_platform_says_why_inference_is_unavailable(
    artifact_store, tmp_path, settings, monkeypatch
):
    missing = tmp_path / "no-venv" / "python"
    monkeypatch.setenv("VLLM_PYTHON", str(missing))
    lines: list[str] = []
    servers = ModelServers(write=lines.append, root=Path(settings.BASE_DIR), var=tmp_path / "var")
    try:
        servers.start()
    finally:
        servers.stop()
    assert lines == [
        f"Inference with {model} is unavailable: vLLM's environment is missing ({missing}); "
        "run `make vllm` to install it."
        for model in ("tiny-chat", "all-MiniLM-L6-v2")
    ]
    assert not Replica.objects.exists()
    assert servers.agents == {}
