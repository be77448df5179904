"""The official `openai` SDK against a live server: the whole life of a file."""

from pathlib import Path

import openai
import pytest

from tests.files.helpers import chat_lines, jsonl


@pytest.fixture(autouse=True)
def _private_artifact_store(artifact_store) -> Path:
    return artifact_store


@pytest.fixture
def dataset(tmp_path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl(chat_lines(12)))
    return path


def test_upload_list_retrieve_download_and_delete(sdk, alice_key, dataset, demo_model_path):
    client = sdk(alice_key)

    with dataset.open("rb") as handle:
        created = client.files.create(file=handle, purpose="fine-tune")

    # Eager Celery validated it when the upload committed, before the response was written.
    assert created.id.startswith("file-")
    assert (created.object, created.purpose, created.status) == ("file", "fine-tune", "processed")
    assert created.filename == "train.jsonl"
    assert created.bytes == dataset.stat().st_size
    assert created.status_details is None
    # Our extension rides along in the SDK's model as an extra field.
    assert created.model_extra["validation"]["statistics"]["n_examples"] == 12

    page = client.files.list(purpose="fine-tune")
    assert [file.id for file in page.data] == [created.id]
    assert client.files.list(purpose="user_data").data == []

    retrieved = client.files.retrieve(created.id)
    assert retrieved.id == created.id and retrieved.status == "processed"

    assert client.files.content(created.id).read() == dataset.read_bytes()

    deleted = client.files.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


def test_list_pages_through_every_file(sdk, alice_key, tmp_path):
    client = sdk(alice_key)
    uploaded = []
    for i in range(3):
        path = tmp_path / f"notes-{i}.txt"
        path.write_bytes(f"note {i}".encode())
        with path.open("rb") as handle:
            uploaded.append(client.files.create(file=handle, purpose="user_data").id)
    # The SDK follows `after` through the pages by itself.
    assert [file.id for file in client.files.list(limit=2, order="asc")] == uploaded


def test_a_bad_purpose_is_a_bad_request(sdk, alice_key, dataset):
    with dataset.open("rb") as handle, pytest.raises(openai.BadRequestError) as raised:
        sdk(alice_key).files.create(file=handle, purpose="assistants")
    assert raised.value.status_code == 400
    assert raised.value.body == {
        "message": "Invalid purpose 'assistants': use 'fine-tune' or 'user_data' or 'batch'.",
        "type": "invalid_request_error",
        "param": "purpose",
        "code": "invalid_value",
    }


def test_another_organizations_file_is_not_found(sdk, alice_key, charlie_key, dataset):
    with dataset.open("rb") as handle:
        file_id = sdk(alice_key).files.create(file=handle, purpose="user_data").id
    with pytest.raises(openai.NotFoundError):
        sdk(charlie_key).files.content(file_id)
