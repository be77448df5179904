"""Datasets and small helpers the files tests share."""

import json

from django.test import Client

from gpu_inference.artifacts import ArtifactStore, LocalArtifactStore


def chat_lines(n: int = 12) -> list[str]:
    return [
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You answer in one word."},
                    {"role": "user", "content": f"What comes after {i}?"},
                    {"role": "assistant", "content": str(i + 1)},
                ]
            }
        )
        for i in range(n)
    ]


def prompt_completion_lines(n: int = 12) -> list[str]:
    return [json.dumps({"prompt": f"{i} + 1 =", "completion": f" {i + 1}"}) for i in range(n)]


def classification_csv(n: int = 12) -> str:
    rows = ["text,label"] + [
        f'"Review {i}: {"great, loved it" if i % 2 else "awful"}",{"positive" if i % 2 else "negative"}'
        for i in range(n)
    ]
    return "\n".join(rows) + "\n"


def jsonl(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def stored_files(store: ArtifactStore) -> list[str]:
    """Every key in the artifact store, partial writes included (a local store's temporary
    files, an S3 store's multipart uploads not yet completed or aborted)."""
    if isinstance(store, LocalArtifactStore):
        root = store.root
        if not root.exists():
            return []
        return sorted(
            path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()
        )
    client, bucket, start = store.client, store.bucket, f"{store.prefix}/"
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=start):
        keys += [item["Key"].removeprefix(start) for item in page.get("Contents", [])]
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=start).get("Uploads", [])
    keys += [f"{upload['Key'].removeprefix(start)} (multipart upload)" for upload in uploads]
    return sorted(keys)


def raw_post(body: bytes, content_type: str, key: str, **extra):
    """A request built by hand, for headers the test clients would otherwise compute."""
    return Client(SERVER_NAME="localhost").generic(
        "POST",
        "/v1/files",
        body,
        content_type=content_type,
        HTTP_AUTHORIZATION=f"Bearer {key}",
        **extra,
    )


FILE_KEYS = {
    "id",
    "object",
    "bytes",
    "created_at",
    "filename",
    "purpose",
    "status",
    "status_details",
    "expires_at",
    "validation",
}


def error_of(response) -> dict:
    return response.json()["error"]


def refused(response, status_code: int, param: str, code: str, message: str) -> None:
    """The response is OpenAI's error shape with exactly this status, param, code and message."""
    # A helper module's asserts are not rewritten by pytest: say what differs ourselves.
    assert response.status_code == status_code, (response.status_code, response.content)
    expected = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    assert error_of(response) == expected, f"{error_of(response)} != {expected}"
