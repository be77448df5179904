"""Fixtures for the files tests: a private artifact store, datasets, and an upload helper."""

from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from gpu_inference.formats import ExampleEncoder


@pytest.fixture(autouse=True)
def _private_artifact_store(artifact_store) -> Path:
    return artifact_store


@pytest.fixture
def encoder(demo_model_path) -> ExampleEncoder:
    """The demo model's tokenizer, the one validation counts with (DEFAULT_TOKENIZER_MODEL)."""
    return ExampleEncoder(demo_model_path)


@pytest.fixture
def upload(api, alice_key, django_capture_on_commit_callbacks) -> Callable:
    """POST /v1/files as alice (or `key`), running what the commit triggers (validation)."""

    def _upload(
        content: bytes | str | None,
        *,
        name: str = "train.jsonl",
        purpose: str | None = "fine-tune",
        key: str | None = None,
        **extra,
    ):
        data = {}
        if content is not None:
            data["file"] = SimpleUploadedFile(
                name, content.encode() if isinstance(content, str) else content
            )
        if purpose is not None:
            data["purpose"] = purpose
        with django_capture_on_commit_callbacks(execute=True):
            return api(key or alice_key).post("/v1/files", data, format="multipart", **extra)

    return _upload
