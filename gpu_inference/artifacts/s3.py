"""The S3-compatible artifact store (AWS S3, MinIO, Ceph, ...), through boto3.

Endpoint, region and credentials come from the standard AWS variables, read by boto3's
own chain (environment, shared files, instance roles), so nothing secret goes through
our settings. Uploads are multipart past one part: each part is sent as soon as it is
full, so memory holds one part whatever the size, and a failed upload is aborted, which
leaves nothing visible under its key. Markers that must be created once use S3's
conditional write (`If-None-Match: *`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from gpu_inference.artifacts.base import ArtifactStore, ArtifactTooLarge, check_key

#: S3's smallest part is 5 MiB (except the last); 8 MiB is boto3's own default
PART_SIZE = 8 * 1024 * 1024
#: DeleteObjects takes at most this many keys per request
DELETE_BATCH = 1000

_clients: dict[tuple[str | None, str | None], object] = {}
_clients_lock = threading.Lock()


def s3_client():
    """One client per endpoint and region (boto3 clients are thread-safe; sessions are not)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    with _clients_lock:
        client = _clients.get((endpoint, region))
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                region_name=region or "us-east-1",
                retries={"max_attempts": 5, "mode": "standard"},
                # Older S3-compatible servers refuse the newer default checksums.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                # A custom endpoint (MinIO, a local server) rarely has per-bucket host names.
                s3={"addressing_style": "path" if endpoint else "auto"},
            )
            client = boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)
            _clients[(endpoint, region)] = client
        return client


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _status(error: Exception) -> int:
    response = getattr(error, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _is_missing(error: Exception) -> bool:
    return _error_code(error) in ("NoSuchKey", "404", "NotFound") or _status(error) == 404


class _ObjectReader(io.RawIOBase):
    """The body of a GET, read as it is consumed (never all at once)."""

    def __init__(self, body, size: int, key: str):
        self._body = body
        self.size = size
        self.name = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3ArtifactStore(ArtifactStore):
    def __init__(self, bucket: str, prefix: str = "", *, cache_dir: Path | str | None = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache_dir = (
            Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "tokenmill-artifacts"
        )
        self.client = s3_client()

    def _name(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key(self, name: str) -> str:
        return name.removeprefix(f"{self.prefix}/") if self.prefix else name

    def _names_under(self, folder: str) -> Iterator[tuple[str, int]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
            for item in page.get("Contents", []):
                yield item["Key"], int(item["Size"])

    def _head(self, name: str) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as error:
            if _is_missing(error):
                return None
            raise

    def write_stream(
        self, key: str, chunks: Iterable[bytes], *, max_bytes: int | None = None
    ) -> tuple[int, str]:
        name = self._name(key)
        digest, size = hashlib.sha256(), 0
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict] = []

        def send_part(data: bytes) -> None:
            nonlocal upload_id
            if upload_id is None:
                upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=name)[
                    "UploadId"
                ]
            number = len(parts) + 1
            answer = self.client.upload_part(
                Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=data
            )
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})

        try:
            for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise ArtifactTooLarge(max_bytes)
                digest.update(chunk)
                buffer += chunk
                while len(buffer) >= PART_SIZE:
                    send_part(bytes(memoryview(buffer)[:PART_SIZE]))
                    del buffer[:PART_SIZE]
            if upload_id is None:
                self.client.put_object(Bucket=self.bucket, Key=name, Body=bytes(buffer))
            else:
                if buffer or not parts:
                    send_part(bytes(buffer))
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            if upload_id is not None:
                # Parts of an aborted upload are never visible, and their space is freed.
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=name, UploadId=upload_id
                    )
            raise
        return size, digest.hexdigest()

    def create_exclusive(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._name(key), Body=data, IfNoneMatch="*"
            )
        except ClientError as error:
            # 412: it exists; 409: another conditional write of it is under way.
            if _status(error) in (409, 412) or _error_code(error) in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
            ):
                return False
            raise
        return True

    def open(self, key: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        name = self._name(key)
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=name)
        except ClientError as error:
            if _is_missing(error):
                raise FileNotFoundError(f"no artifact {key!r}") from None
            raise
        reader = _ObjectReader(answer["Body"], int(answer["ContentLength"]), key)
        return io.BufferedReader(reader, buffer_size=1 << 16)

    def exists(self, key: str) -> bool:
        name = self._name(key)
        if self._head(name) is not None:
            return True
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"{name}/", MaxKeys=1)
        return bool(listed.get("KeyCount"))

    def size(self, key: str) -> int:
        name = self._name(key)
        head = self._head(name)
        if head is not None:
            return int(head["ContentLength"])
        return sum(size for _, size in self._names_under(f"{name}/"))

    def list_files(self, prefix: str) -> list[str]:
        names = [name for name, _ in self._names_under(f"{self._name(prefix)}/")]
        if not names:
            raise FileNotFoundError(f"no artifact folder {prefix!r}")
        return sorted(self._key(name) for name in names)

    def copy_object(self, source: str, target: str) -> None:
        """A server-side copy: the bytes never leave the store (objects over 5 GB would
        need a multipart copy; checkpoints and adapters are far below it)."""
        self.client.copy_object(
            Bucket=self.bucket,
            Key=self._name(target),
            CopySource={"Bucket": self.bucket, "Key": self._name(source)},
        )

    def delete(self, key: str) -> None:
        name = self._name(key)
        names = [name] + [found for found, _ in self._names_under(f"{name}/")]
        for start in range(0, len(names), DELETE_BATCH):
            batch = names[start : start + DELETE_BATCH]
            self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": item} for item in batch], "Quiet": True},
            )

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=self.cache_dir, prefix="copy-")
        path = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as out, self.open(key) as source:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
            yield path
        finally:
            path.unlink(missing_ok=True)

    def host_folders(self) -> tuple[Path, ...]:
        return (self.cache_dir,)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
