"""The desired adapters of a base model: a manifest in the artifact store, and its wake-up.

The platform writes one manifest per base model, `serving/manifests/<model>.json`,
whenever its set of fine-tuned adapters changes, then broadcasts a wake-up on the
fanout exchange `serving.adapters`. Serving agents read it (see agent.py); they
need nothing but the artifact store and the broker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field

from gpu_inference.artifacts import ArtifactStore

logger = logging.getLogger(__name__)

WAKE_EXCHANGE = "serving.adapters"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Adapter:
    name: str  # the served name: the fine-tuned model's public id
    artifact_key: str  # its folder in the artifact store
    checksum: str  # folder_checksum() of that folder


@dataclass(frozen=True)
class Manifest:
    base_model: str
    adapters: tuple[Adapter, ...] = field(default=())
    published_at: float = 0.0

    def to_json(self) -> bytes:
        body = {"format": FORMAT_VERSION, **asdict(self)}
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        body = json.loads(data)
        if body.get("format") != FORMAT_VERSION:
            raise ValueError(f"unknown manifest format {body.get('format')!r}")
        return cls(
            base_model=body["base_model"],
            adapters=tuple(Adapter(**adapter) for adapter in body["adapters"]),
            published_at=float(body.get("published_at", 0)),
        )


def manifest_key(base_model: str) -> str:
    return f"serving/manifests/{base_model}.json"


def folder_checksum(store: ArtifactStore, key: str) -> str:
    """SHA-256 over the folder's file names and contents: equal folders, equal checksums."""
    digest = hashlib.sha256()
    prefix = key.rstrip("/") + "/"
    for file_key in store.list_files(key):
        digest.update(file_key.removeprefix(prefix).encode() + b"\0")
        with store.open(file_key) as content:
            while chunk := content.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def write_manifest(store: ArtifactStore, manifest: Manifest) -> None:
    store.write_bytes(manifest_key(manifest.base_model), manifest.to_json())


def read_manifest(store: ArtifactStore, base_model: str) -> Manifest | None:
    """The published manifest, or None when none was ever published. A broken store raises."""
    key = manifest_key(base_model)
    if not store.exists(key):
        return None
    with store.open(key) as data:
        return Manifest.from_json(data.read())


def build_manifest(
    store: ArtifactStore,
    base_model: str,
    adapters: list[tuple[str, str]],
    *,
    previous: Manifest | None = None,
) -> Manifest:
    """The manifest for `adapters` (name, artifact key). Checksums of keys already in
    `previous` are reused (an artifact key is written once), so republishing reads only
    new adapters; one whose folder is missing from the store is left out and logged."""
    known = {a.artifact_key: a.checksum for a in previous.adapters} if previous else {}
    listed = []
    for name, key in adapters:
        try:
            checksum = known.get(key) or folder_checksum(store, key)
        except FileNotFoundError:
            logger.error("the adapter of %s is missing from the artifact store (%s)", name, key)
            continue
        listed.append(Adapter(name=name, artifact_key=key, checksum=checksum))
    return Manifest(base_model=base_model, adapters=tuple(listed), published_at=time.time())


def wake_exchange():
    from kombu import Exchange

    return Exchange(WAKE_EXCHANGE, type="fanout", durable=False, auto_delete=False)


def send_wake_up(connection, base_model: str) -> None:
    """Tell every agent to read `base_model`'s manifest now (they also read it periodically)."""
    exchange = wake_exchange()
    producer = connection.Producer()
    producer.publish(
        {"base_model": base_model},
        exchange=exchange,
        declare=[exchange],
        serializer="json",
        retry=True,
        retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        expiration=300,  # a wake-up nobody read for minutes is worthless
    )
