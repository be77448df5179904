import json

import pytest

from tokenmill.files.models import File
from tokenmill.files.storage import get_artifact_store, normalized_key, original_key

FAKE_TRAINER = "tests.finetuning.fake_trainer.run"


def chat_examples(n: int = 20) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is the code word number {i}?"},
                {"role": "assistant", "content": f"The code word is falcon {i}."},
            ]
        }
        for i in range(n)
    ]


def make_training_file(tenant, examples=None, *, purpose="fine-tune", status="processed") -> File:
    """A validated fine-tune file in the artifact store, as the upload path leaves it."""
    examples = chat_examples() if examples is None else examples
    body = "".join(json.dumps(example) + "\n" for example in examples).encode()
    file = File(
        tenant=tenant, purpose=purpose, filename="train.jsonl", bytes=len(body), sha256="0" * 64
    )
    store = get_artifact_store()
    store.write_bytes(original_key(file.public_id), body)
    file.storage_key = original_key(file.public_id)
    if status == "processed":
        store.write_bytes(normalized_key(file.public_id), body)
        file.normalized_key = normalized_key(file.public_id)
    file.status = status
    file.status_details = "line 1: invalid JSON" if status == "error" else ""
    file.save()
    return file


@pytest.fixture
def fake_trainer(settings, monkeypatch):
    settings.TRAINER = FAKE_TRAINER
    monkeypatch.setenv("FAKE_TRAINER_MODE", "ok")
    return monkeypatch


@pytest.fixture
def training_file(acme, artifact_root, demo_model_path):
    return make_training_file(acme)
