"""Fixtures for the batch tests: a private artifact store, a fake model server as
tiny-chat's replica, and helpers to upload an input file and create a batch."""

import json
from collections.abc import Callable

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.e2e.test_inference_sdk import served  # noqa: F401  (the gateway before real vLLM)
from tests.gateway.conftest import _forget_process_state, backend, backends  # noqa: F401


@pytest.fixture(autouse=True)
def _private_artifact_store(artifact_store):
    _forget_process_state()
    yield artifact_store
    _forget_process_state()


def chat_line(custom_id: str, content: str = "Hello", **body) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "tiny-chat",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 8,
            **body,
        },
    }


def jsonl(rows: list) -> bytes:
    return b"".join(
        (row if isinstance(row, bytes) else json.dumps(row).encode()) + b"\n" for row in rows
    )


@pytest.fixture
def upload_batch_file(api, alice_key) -> Callable:
    """POST /v1/files with purpose=batch; returns the file id."""

    def _upload(rows: list, *, key: str | None = None, purpose: str = "batch") -> str:
        response = api(key or alice_key).post(
            "/v1/files",
            {"file": SimpleUploadedFile("batch.jsonl", jsonl(rows)), "purpose": purpose},
            format="multipart",
        )
        assert response.status_code == 200, response.content
        return response.json()["id"]

    return _upload


@pytest.fixture
def create_batch(api, alice_key) -> Callable:
    """POST /v1/batches; returns the response."""

    def _create(file_id: str, *, key: str | None = None, **fields):
        body = {
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            **fields,
        }
        return api(key or alice_key).post("/v1/batches", body, format="json")

    return _create
