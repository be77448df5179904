"""The interface every artifact store backend implements, and what they share."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

#: how much of a local file is read at once when it is uploaded
READ_CHUNK = 1 << 20


class ArtifactTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


def check_key(key: str) -> str:
    """A relative key of plain names joined by '/': nothing that could escape the store."""
    name = key.rstrip("/")  # a folder may be named with its trailing slash
    parts = name.split("/")
    if not name or name.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"artifact key escapes the store or is malformed: {key!r}")
    return name


class ArtifactStore(ABC):
    """Objects under keys; a folder is every key under `<prefix>/`."""

    @abstractmethod
    def write_stream(
        self, key: str, chunks: Iterable[bytes], *, max_bytes: int | None = None
    ) -> tuple[int, str]:
        """Store `chunks` under `key`; returns (byte count, SHA-256 hex).

        Streams: no more than one part is held in memory. Raises ArtifactTooLarge past
        `max_bytes`. On any failure nothing is left under `key` (an earlier object there
        stays as it was) and nothing half-written is visible.
        """

    @abstractmethod
    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create `key` holding `data` only if it does not exist: True if this call created it."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A binary stream of the object, read as it is consumed. FileNotFoundError if absent."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """True for an object, or a folder holding at least one."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Bytes stored under `key`: one object, or everything under a folder; 0 if absent."""

    @abstractmethod
    def list_files(self, prefix: str) -> list[str]:
        """The keys of the objects under the folder `prefix`, sorted (an adapter, a checkpoint).

        FileNotFoundError when the folder holds nothing."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object `key` and everything under the folder `key`; absent is fine."""

    @abstractmethod
    def local_copy(self, key: str) -> contextlib.AbstractContextManager[Path]:
        """A context giving a local file with the object's bytes, for code that needs a
        path (tokenizers, validation, the trainer); removed at exit when it is a copy.
        Never write to it. FileNotFoundError if absent."""

    @abstractmethod
    def host_folders(self) -> tuple[Path, ...]:
        """Folders of this host where the store keeps objects or copies: a path under one
        of them never appears in what tenants read."""

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, for logs and errors (never credentials)."""

    # What every backend gets from the primitives above.

    def write_bytes(self, key: str, data: bytes) -> None:
        self.write_stream(key, [data])

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as stored:
            return stored.read()

    def write_file(self, key: str, path: Path | str) -> tuple[int, str]:
        """Upload the local file `path` to `key`, streaming it."""
        with Path(path).open("rb") as source:
            return self.write_stream(key, iter(lambda: source.read(READ_CHUNK), b""))

    def put_folder(self, prefix: str, folder: Path | str) -> list[str]:
        """Upload every file under the local `folder` to the folder `prefix`; returns the keys."""
        folder = Path(folder)
        check_key(prefix)
        keys = []
        for path in sorted(item for item in folder.rglob("*") if item.is_file()):
            key = f"{prefix}/{path.relative_to(folder).as_posix()}"
            self.write_file(key, path)
            keys.append(key)
        return keys

    def fetch_folder(self, prefix: str, destination: Path | str) -> list[Path]:
        """Copy every object under the folder `prefix` into the local `destination`."""
        destination = Path(destination)
        start = prefix.rstrip("/") + "/"
        copied = []
        for key in self.list_files(prefix):
            target = destination / key.removeprefix(start)
            target.parent.mkdir(parents=True, exist_ok=True)
            with self.open(key) as source, target.open("wb") as out:
                while chunk := source.read(READ_CHUNK):
                    out.write(chunk)
            copied.append(target)
        return copied

    def copy_tree(self, source: str, target: str) -> None:
        """Copy the folder `source` to `target`, replacing what `target` held.
        FileNotFoundError when `source` holds nothing."""
        keys = self.list_files(source)
        start = source.rstrip("/") + "/"
        self.delete(target)
        for key in keys:
            self.copy_object(key, f"{target.rstrip('/')}/{key.removeprefix(start)}")

    def copy_object(self, source: str, target: str) -> None:
        """Copy one object within the store (streamed through this host unless the
        backend copies on its side)."""
        with self.open(source) as stored:
            self.write_stream(target, iter(lambda: stored.read(READ_CHUNK), b""))

    def iter_chunks(self, key: str, size: int = READ_CHUNK) -> Iterator[bytes]:
        with self.open(key) as source:
            while chunk := source.read(size):
                yield chunk

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
