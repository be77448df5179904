"""The serving agent's reconciliation, against a fake vLLM (the real one is in test_fanout.py)."""

import json
import threading
import time
from pathlib import Path

import pytest

from gpu_inference.artifacts import ArtifactStore, open_store
from gpu_inference.broker import filesystem_transport_options
from gpu_inference.serving.agent import Agent, run
from gpu_inference.serving.manifest import (
    Manifest,
    build_manifest,
    read_manifest,
    send_wake_up,
    write_manifest,
)
from gpu_inference.serving.vllm_api import VllmError


class FakeVllm:
    """What the agent sees of vLLM: loaded adapters by name, loading from a local folder."""

    base_url = "http://fake-vllm"

    def __init__(self) -> None:
        self.loaded: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []

    def adapters(self) -> dict[str, str]:
        return dict(self.loaded)

    def load_adapter(self, name: str, path: str) -> None:
        self.calls.append(("load", name))
        if not (Path(path) / "adapter_config.json").is_file():
            raise VllmError(f"no adapter in {path}")
        self.loaded[name] = path

    def unload_adapter(self, name: str) -> None:
        self.calls.append(("unload", name))
        self.loaded.pop(name, None)

    def restart(self) -> None:  # vLLM forgets runtime adapters when it restarts
        self.loaded.clear()


@pytest.fixture
def store(any_store_url, tmp_path) -> ArtifactStore:
    return open_store(any_store_url, cache_dir=tmp_path / "cache")


def save_adapter(store: ArtifactStore, key: str, rank: int = 16) -> str:
    store.write_bytes(f"{key}/adapter_config.json", json.dumps({"r": rank}).encode())
    store.write_bytes(f"{key}/adapter_model.safetensors", b"weights" * rank)
    return key


def publish(store: ArtifactStore, adapters: list[tuple[str, str]]) -> Manifest:
    manifest = build_manifest(
        store, "tiny-chat", adapters, previous=read_manifest(store, "tiny-chat")
    )
    write_manifest(store, manifest)
    return manifest


@pytest.fixture
def agent(store, tmp_path):
    return Agent(base_model="tiny-chat", store=store, vllm=FakeVllm(), cache_dir=tmp_path / "cache")


def test_missing_adapters_are_copied_and_loaded_unwanted_ones_unloaded(agent, store):
    publish(store, [("ft:tiny-chat:acme:a:1", save_adapter(store, "jobs/1/final"))])
    agent.vllm.loaded["ft:tiny-chat:acme:gone:0"] = "/somewhere"
    outcome = agent.reconcile()
    assert outcome.loaded == ["ft:tiny-chat:acme:a:1"]
    assert outcome.unloaded == ["ft:tiny-chat:acme:gone:0"]
    local = Path(agent.vllm.loaded["ft:tiny-chat:acme:a:1"])
    assert local.parent == agent.cache.root  # vLLM loads from this host's disk, not the store
    assert (local / "adapter_model.safetensors").read_bytes() == b"weights" * 16
    # Nothing to do a second time.
    assert agent.reconcile().loaded == [] and len(agent.vllm.calls) == 2


def test_a_restarted_vllm_gets_its_adapters_back_from_the_cache(agent, store):
    publish(store, [("ft:a", save_adapter(store, "jobs/1/final"))])
    agent.reconcile()
    store.delete("jobs/1/final")  # the store is not read again: the local copy serves
    agent.vllm.restart()
    assert agent.reconcile().loaded == ["ft:a"]
    assert "ft:a" in agent.vllm.loaded


def test_a_deleted_adapter_is_unloaded_and_its_copy_removed(agent, store):
    publish(store, [("ft:a", save_adapter(store, "jobs/1/final"))])
    agent.reconcile()
    copy = Path(agent.vllm.loaded["ft:a"])
    publish(store, [])
    agent.refresh()
    assert agent.reconcile().unloaded == ["ft:a"]
    assert agent.vllm.loaded == {} and not copy.exists()


def test_a_corrupt_copy_is_refused_and_the_other_adapters_still_load(agent, store):
    publish(
        store,
        [
            ("ft:bad", save_adapter(store, "jobs/1/final")),
            ("ft:good", save_adapter(store, "jobs/2/final")),
        ],
    )
    store.write_bytes("jobs/1/final/adapter_model.safetensors", b"tampered")
    outcome = agent.reconcile()
    assert outcome.loaded == ["ft:good"]
    assert outcome.failed == {
        "ft:bad": "the copy of jobs/1/final does not match the manifest's checksum"
    }
    assert set(agent.vllm.loaded) == {"ft:good"}


def test_an_unreadable_store_keeps_the_adapters_loaded(agent, store):
    publish(store, [("ft:a", save_adapter(store, "jobs/1/final"))])
    agent.reconcile()
    store.write_bytes("serving/manifests/tiny-chat.json", b"{not json")
    with pytest.raises(ValueError):
        agent.refresh()
    agent.reconcile()
    assert "ft:a" in agent.vllm.loaded


def test_polling_finds_a_change_without_any_wake_up(agent, store):
    stop = threading.Event()
    thread = threading.Thread(
        target=run,
        args=(agent,),
        kwargs={
            "broker_url": None,
            "queue_name": "-",
            "interval": 0.2,
            "check": 0.05,
            "stop": stop,
        },
    )
    thread.start()
    try:
        publish(store, [("ft:a", save_adapter(store, "jobs/1/final"))])
        assert wait_until(lambda: "ft:a" in agent.vllm.loaded, 5)
    finally:
        stop.set()
        thread.join(5)


def test_a_wake_up_on_the_broker_makes_the_agent_read_the_manifest_at_once(agent, store, tmp_path):
    from kombu import Connection

    options = filesystem_transport_options(tmp_path / "broker")
    stop = threading.Event()
    thread = threading.Thread(
        target=run,
        args=(agent,),
        kwargs={
            "broker_url": "filesystem://",
            "transport_options": options,
            "queue_name": "serving.adapters.test",
            "interval": 600,  # polling alone would take ten minutes
            "check": 0.05,
            "stop": stop,
        },
    )
    thread.start()
    try:
        # The agent has read the (empty) manifest and listens: only a wake-up can tell it more.
        assert wait_until(lambda: agent.manifest is not None, 5)
        assert wait_until(lambda: list((tmp_path / "broker" / "control").iterdir()), 5)
        publish(store, [("ft:a", save_adapter(store, "jobs/1/final"))])
        with Connection("filesystem://", transport_options=options) as connection:
            send_wake_up(connection, "tiny-chat")
        assert wait_until(lambda: "ft:a" in agent.vllm.loaded, 5)
    finally:
        stop.set()
        thread.join(10)
    # A stopped agent leaves no queue behind to collect wake-ups for nobody.
    bindings = (tmp_path / "broker" / "control" / "serving.adapters.exchange").read_text()
    assert "serving.adapters.test" not in bindings


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())
