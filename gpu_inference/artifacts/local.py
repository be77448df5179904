"""The local-folder artifact store: the embedded default, shared by every process on
one machine. Writes go to a temporary file beside the target, then are renamed into
place, so a reader never sees half an object.
"""

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from gpu_inference.artifacts.base import ArtifactStore, ArtifactTooLarge, check_key


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """Where `key` lives on this host's disk (local stores only)."""
        target = (self.root / check_key(key)).resolve()
        if self.root.resolve() not in target.parents:
            raise ValueError(f"artifact key escapes the store: {key!r}")
        return target

    def write_stream(
        self, key: str, chunks: Iterable[bytes], *, max_bytes: int | None = None
    ) -> tuple[int, str]:
        """Store `chunks` under `key`; returns (byte count, SHA-256 hex). Nothing is left on failure."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise ArtifactTooLarge(max_bytes)
                    digest.update(chunk)
                    out.write(chunk)
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return size, digest.hexdigest()

    def create_exclusive(self, key: str, data: bytes) -> bool:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written beside, then linked into place: the link fails if the name exists, and
        # a reader never sees the marker empty.
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.link(temp_name, target)
        except FileExistsError:
            return False
        finally:
            Path(temp_name).unlink(missing_ok=True)
        return True

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def exists(self, key: str) -> bool:
        target = self.path(key)
        if target.is_file():
            return True
        return target.is_dir() and any(
            item.is_file() and not item.name.startswith(".partial-") for item in target.rglob("*")
        )

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        target = self.path(key)
        if not target.is_file():
            raise FileNotFoundError(f"no artifact {key!r}")
        yield target  # already a local file: no copy

    def put_folder(self, prefix: str, folder: Path | str) -> list[str]:
        """Hard-links each file into place when `folder` is on the store's disk (a copy if not)."""
        folder = Path(folder)
        keys = []
        for source in sorted(item for item in folder.rglob("*") if item.is_file()):
            key = f"{check_key(prefix)}/{source.relative_to(folder).as_posix()}"
            target = self.path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            temp_name = target.parent / f".partial-{os.getpid()}-{source.name}"
            try:
                os.link(source, temp_name)
            except OSError:
                self.write_file(key, source)
            else:
                os.replace(temp_name, target)
            keys.append(key)
        return keys

    def host_folders(self) -> tuple[Path, ...]:
        return (self.root,)

    def describe(self) -> str:
        return f"file://{self.root}"

    def size(self, key: str) -> int:
        """Bytes stored under `key`: one object, or everything under a folder; 0 if absent."""
        target = self.path(key)
        if target.is_file():
            return target.stat().st_size
        total = 0
        for folder, _, names in os.walk(target):
            for name in names:
                with contextlib.suppress(FileNotFoundError):  # deleted while we count
                    total += (Path(folder) / name).stat().st_size
        return total

    def list_files(self, prefix: str) -> list[str]:
        """The keys of the files under the folder `prefix`, sorted (an adapter, a checkpoint)."""
        folder = self.path(prefix)
        if not folder.is_dir():
            raise FileNotFoundError(f"no artifact folder {prefix!r}")
        root = self.root.resolve()
        return sorted(
            str(item.relative_to(root))
            for item in folder.rglob("*")
            if item.is_file() and not item.name.startswith(".partial-")
        )

    def copy_tree(self, source: str, target: str) -> None:
        """Copy the folder `source` to `target` (replacing it), by hard links where the
        file system has them: a carried checkpoint costs no second copy of its bytes.
        `target` appears whole or not at all."""
        origin, destination = self.path(source), self.path(target)
        if not origin.is_dir():
            raise FileNotFoundError(f"no artifact folder {source!r}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = destination.with_name(".partial-" + destination.name)
        shutil.rmtree(staging, ignore_errors=True)
        try:
            shutil.copytree(origin, staging, copy_function=_link_or_copy)
            shutil.rmtree(destination, ignore_errors=True)
            os.rename(staging, destination)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def delete(self, key: str) -> None:
        target = self.path(key)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copy2(source, target)
