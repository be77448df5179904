"""The serving agent: keeps one vLLM server's LoRA adapters equal to its base model's manifest.

One agent runs beside each vLLM chat server, on the same host (vLLM loads adapters
from its local disk). It needs the artifact store and the broker, nothing else: no
database, no access to the web's disk. It is level-triggered:

- it reads the manifest when a wake-up arrives on the `serving.adapters` fanout
  exchange, and every `--interval` seconds anyway (a lost message costs at most that);
- every `--check` seconds it compares the manifest it holds with what vLLM lists in
  GET /v1/models, so a vLLM that restarted (and forgot its runtime adapters) gets
  them back as soon as it answers again;
- it copies a missing adapter from the store into its local cache (checked against
  the manifest's checksum), loads it with POST /v1/load_lora_adapter under the
  fine-tuned model's id, and unloads what the manifest no longer lists.

Run it as `python -m gpu_inference.serving.agent --base-model tiny-chat --vllm-url ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from gpu_inference.artifacts import ArtifactStore, LocalArtifactStore, open_store
from gpu_inference.broker import filesystem_transport_options, use_atomic_filesystem_transport
from gpu_inference.serving.manifest import (
    WAKE_EXCHANGE,
    Adapter,
    Manifest,
    folder_checksum,
    read_manifest,
    wake_exchange,
)
from gpu_inference.serving.vllm_api import VllmClient, VllmError

logger = logging.getLogger("tokenmill.serving.agent")


@dataclass
class Outcome:
    loaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class AdapterCache:
    """Adapters copied from the store to this host, one folder per (name, checksum)."""

    def __init__(self, root: Path, store: ArtifactStore) -> None:
        self.root = Path(root)
        self.store = store

    def folder(self, adapter: Adapter) -> Path:
        name = hashlib.sha256(adapter.name.encode()).hexdigest()[:16]
        return self.root / f"{name}-{adapter.checksum[:16]}"

    def ensure(self, adapter: Adapter) -> Path:
        target = self.folder(adapter)
        if target.is_dir():
            return target
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        self.store.fetch_folder(adapter.artifact_key, staging)
        local = LocalArtifactStore(self.root)  # the cache on this host's disk, for the checksum
        copied = folder_checksum(local, staging.name) if staging.is_dir() else ""
        if copied != adapter.checksum:
            shutil.rmtree(staging, ignore_errors=True)
            raise ValueError(
                f"the copy of {adapter.artifact_key} does not match the manifest's checksum"
            )
        os.rename(staging, target)
        return target

    def prune(self, keep: set[Path]) -> None:
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if folder not in keep:
                shutil.rmtree(folder, ignore_errors=True)


class Agent:
    def __init__(
        self, *, base_model: str, store: ArtifactStore, vllm: VllmClient, cache_dir: Path
    ) -> None:
        self.base_model = base_model
        self.store = store
        self.vllm = vllm
        self.cache = AdapterCache(cache_dir, store)
        self.manifest: Manifest | None = None

    def refresh(self) -> None:
        """Read the manifest again. A store that fails keeps the last one (never unload on a hiccup)."""
        self.manifest = read_manifest(self.store, self.base_model) or Manifest(self.base_model)

    def reconcile(self) -> Outcome:
        """Make vLLM hold exactly the manifest's adapters. Raises when vLLM does not answer."""
        outcome = Outcome()
        if self.manifest is None:
            self.refresh()
        wanted = {adapter.name: adapter for adapter in self.manifest.adapters}
        loaded = self.vllm.adapters()
        keep: set[Path] = set()
        for name, adapter in wanted.items():
            try:
                folder = self.cache.ensure(adapter)
                keep.add(folder)
                if loaded.get(name) != str(folder):
                    self.vllm.load_adapter(name, str(folder))
                    outcome.loaded.append(name)
            except (OSError, ValueError, VllmError) as error:
                # One broken adapter must not keep the others from serving.
                outcome.failed[name] = str(error)
                keep.add(self.cache.folder(adapter))
        for name in loaded.keys() - wanted.keys():
            self.vllm.unload_adapter(name)
            outcome.unloaded.append(name)
        self.cache.prune(keep)
        for name in outcome.loaded:
            logger.info("loaded %s on %s", name, self.vllm.base_url)
        for name in outcome.unloaded:
            logger.info("unloaded %s from %s", name, self.vllm.base_url)
        for name, reason in outcome.failed.items():
            logger.error("cannot load %s on %s: %s", name, self.vllm.base_url, reason)
        return outcome


def run(
    agent: Agent,
    *,
    broker_url: str | None,
    transport_options: dict | None = None,
    queue_name: str,
    interval: float = 30.0,
    check: float = 2.0,
    stop: threading.Event | None = None,
) -> None:
    """Reconcile until `stop` is set: on wake-ups, every `interval` (manifest) and `check` (vLLM)."""
    stop = stop or threading.Event()
    wake = threading.Event()
    listener = None
    if broker_url:
        listener = threading.Thread(
            target=_listen,
            args=(broker_url, transport_options or {}, queue_name, agent.base_model, wake, stop),
            daemon=True,
            name="wake-ups",
        )
        listener.start()
    next_refresh = 0.0
    while not stop.is_set():
        if wake.is_set() or time.monotonic() >= next_refresh:
            wake.clear()
            try:
                agent.refresh()
            except Exception:
                logger.exception("cannot read the manifest of %s", agent.base_model)
            next_refresh = time.monotonic() + interval
        try:
            agent.reconcile()
        except Exception as error:  # vLLM restarting or not up yet: try at the next check
            logger.debug("vLLM at %s not reconciled: %s", agent.vllm.base_url, error)
        wake.wait(check)
    if listener:
        listener.join(5)


def _listen(
    broker_url: str,
    transport_options: dict,
    queue_name: str,
    base_model: str,
    wake: threading.Event,
    stop: threading.Event,
) -> None:
    from kombu import Connection, Queue

    def on_message(body, message) -> None:
        message.ack()
        if isinstance(body, dict) and body.get("base_model") == base_model:
            wake.set()

    queue = Queue(queue_name, wake_exchange(), durable=False, auto_delete=True)
    while not stop.is_set():
        try:
            with Connection(broker_url, transport_options=transport_options) as connection:
                bound = queue(connection.default_channel)
                with connection.Consumer([bound], callbacks=[on_message], accept=["json"]):
                    while not stop.is_set():
                        try:
                            connection.drain_events(timeout=1)
                        except TimeoutError:
                            continue
                # Leaving: unbind, or the broker keeps a copy of every wake-up for nobody.
                with contextlib.suppress(Exception):
                    bound.purge()
                    bound.delete()
        except Exception:
            logger.exception("lost the broker; listening for wake-ups again in 2s")
            stop.wait(2)


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-model", required=True, help="the manifest to follow, e.g. tiny-chat"
    )
    parser.add_argument("--vllm-url", required=True, help="the vLLM server, http://host:port")
    parser.add_argument(
        "--artifact-store",
        default=os.environ.get("ARTIFACT_STORE_URL"),
        required=not os.environ.get("ARTIFACT_STORE_URL"),
        help="the artifact store: a folder, file:///path or s3://bucket/prefix "
        "(default: ARTIFACT_STORE_URL; S3 credentials from the AWS_* variables)",
    )
    parser.add_argument("--cache-dir", required=True, help="where adapters are copied on this host")
    parser.add_argument("--broker-url", default=os.environ.get("REDIS_URL") or "filesystem://")
    parser.add_argument("--broker-folder", help="the filesystem broker's folder (embedded default)")
    parser.add_argument(
        "--interval", type=float, default=30.0, help="seconds between manifest reads"
    )
    parser.add_argument("--check", type=float, default=2.0, help="seconds between checks of vLLM")
    parser.add_argument("--name", help="this agent's wake-up queue (stable across restarts)")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = argument_parser()
    args = parser.parse_args(argv)
    name = args.name or f"{socket.gethostname()}-{args.base_model}-{urlsplit(args.vllm_url).port}"
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    for chatty in ("httpx", "httpcore"):  # a line per check of vLLM, every two seconds
        logging.getLogger(chatty).setLevel(logging.WARNING)
    options = {}
    if args.broker_url.startswith("filesystem://"):
        if not args.broker_folder:
            parser.error("--broker-folder is needed with the filesystem broker")
        use_atomic_filesystem_transport()
        options = filesystem_transport_options(Path(args.broker_folder))
    api_key = os.environ.get("VLLM_API_KEY", "")
    with VllmClient(args.vllm_url, api_key=api_key) as vllm:
        agent = Agent(
            base_model=args.base_model,
            store=open_store(args.artifact_store),
            vllm=vllm,
            cache_dir=Path(args.cache_dir),
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        logger.info("serving agent for %s on %s is running", args.base_model, args.vllm_url)
        run(
            agent,
            broker_url=args.broker_url,
            transport_options=options,
            queue_name=f"{WAKE_EXCHANGE}.{name}",
            interval=args.interval,
            check=args.check,
            stop=stop,
        )


if __name__ == "__main__":
    main()
