"""The artifact store: uploaded datasets, checkpoints, adapters, manifests and job markers.

Web, default workers, GPU workers and serving agents all reach it; GPU workers need
nothing else but the broker. Keys are relative, slash-separated names such as
`files/<file-id>/original`; a "folder" is every key under `<prefix>/`.

Two backends share one interface (`ArtifactStore`), chosen by `ARTIFACT_STORE_URL`:

- a local folder (`file:///srv/artifacts` or a bare absolute path): the embedded
  default, shared by every process on one machine;
- an S3-compatible bucket (`s3://bucket/prefix`), with endpoint, region and credentials
  from the standard AWS variables (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`,
  `AWS_REGION` or `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).

Nothing outside this package knows which one it talks to. Writes are atomic (a reader
never sees half an object), uploads stream (S3: multipart, one part in memory at a
time), reads stream, and code that needs real files (the trainer, validation, vLLM)
gets them through `local_copy` or `put_folder`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from gpu_inference.artifacts.base import ArtifactStore, ArtifactTooLarge, check_key
from gpu_inference.artifacts.local import LocalArtifactStore

__all__ = [
    "ArtifactStore",
    "ArtifactStoreConfigError",
    "ArtifactTooLarge",
    "LocalArtifactStore",
    "check_key",
    "open_store",
    "parse_store_url",
]


class ArtifactStoreConfigError(ValueError):
    """A bad ARTIFACT_STORE_URL: the message names the variable and what is wrong."""


def parse_store_url(url: str, *, variable: str = "ARTIFACT_STORE_URL") -> tuple[str, str, str]:
    """`(kind, location, prefix)`: ("file", "/abs/folder", "") or ("s3", "bucket", "prefix")."""
    value = url.strip()
    if not value:
        raise ArtifactStoreConfigError(f"{variable} is empty")
    if "://" not in value:
        if not Path(value).expanduser().is_absolute():
            raise ArtifactStoreConfigError(
                f"{variable} must be an absolute path, file:///path or s3://bucket/prefix, "
                f"got {value!r}"
            )
        return "file", str(Path(value).expanduser()), ""
    parts = urlsplit(value)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ArtifactStoreConfigError(
                f"{variable} must be file:///absolute/path (three slashes), got {value!r}"
            )
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ArtifactStoreConfigError(f"{variable} must name an absolute path, got {value!r}")
        return "file", path, ""
    if parts.scheme == "s3":
        bucket = parts.netloc
        if not bucket or "@" in bucket or ":" in bucket:
            # Credentials never go in the URL: they come from the AWS variables.
            raise ArtifactStoreConfigError(
                f"{variable} must be s3://bucket/prefix with the bucket's name only, "
                "credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        if parts.query or parts.fragment:
            raise ArtifactStoreConfigError(
                f"{variable} takes no query or fragment: s3://bucket/prefix"
            )
        prefix = unquote(parts.path).strip("/")
        if prefix:
            try:
                check_key(prefix)
            except ValueError:
                raise ArtifactStoreConfigError(
                    f"{variable} has a bad prefix {prefix!r}: use plain names separated by '/'"
                ) from None
        return "s3", bucket, prefix
    raise ArtifactStoreConfigError(
        f"{variable} must start with file:// or s3:// (or be an absolute path), "
        f"got {parts.scheme}://..."
    )


def open_store(
    url: str | Path, *, cache_dir: Path | str | None = None, variable: str = "ARTIFACT_STORE_URL"
) -> ArtifactStore:
    """The store `url` names. `cache_dir` is where an S3 store downloads what must be a
    local file (it defaults to a folder in the system's temporary directory)."""
    kind, location, prefix = parse_store_url(str(url), variable=variable)
    if kind == "file":
        return LocalArtifactStore(location)
    from gpu_inference.artifacts.s3 import S3ArtifactStore

    return S3ArtifactStore(location, prefix, cache_dir=cache_dir)
