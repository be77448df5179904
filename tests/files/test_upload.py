"""POST /v1/files: storing, validating, and every way an upload is refused."""

import hashlib
import json

import pytest

from tests.factories import make_key
from tests.files.helpers import (
    FILE_KEYS,
    chat_lines,
    classification_csv,
    error_of,
    jsonl,
    prompt_completion_lines,
    raw_post,
    refused,
    stored_files,
)
from tokenmill.files.models import File, StoredArtifact
from tokenmill.files.storage import get_artifact_store


@pytest.mark.parametrize(
    ("name", "content", "dataset_format"),
    [
        ("chat.jsonl", jsonl(chat_lines(12)), "chat"),
        ("completions.jsonl", jsonl(prompt_completion_lines(12)), "prompt_completion"),
        ("reviews.csv", classification_csv(12).encode(), "classification"),
    ],
)
def test_a_fine_tune_upload_is_stored_then_validated_with_real_token_counts(
    upload, alice_api, acme, encoder, name, content, dataset_format
):
    response = upload(content, name=name)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == FILE_KEYS
    assert body["id"].startswith("file-")
    assert body["object"] == "file"
    assert body["filename"] == name
    assert body["purpose"] == "fine-tune"
    assert body["bytes"] == len(content)
    assert body["expires_at"] is None
    # The response leaves before the commit; validation runs once the row is committed.
    assert body["status"] == "uploaded"
    assert body["validation"] is None

    file = File.objects.for_tenant(acme).get(public_id=body["id"])
    assert file.sha256 == hashlib.sha256(content).hexdigest()
    store = get_artifact_store()
    assert store.read_bytes(file.storage_key) == content

    validated = alice_api.get(f"/v1/files/{body['id']}").json()
    assert validated["status"] == "processed"
    assert validated["status_details"] is None
    report = validated["validation"]
    assert report["ok"] is True
    assert report["errors"] == []
    statistics = report["statistics"]
    assert statistics["format"] == dataset_format
    assert statistics["n_examples"] == 12
    assert statistics["context_length"] == 256  # the catalog's tiny-chat
    # Counted by the demo model's own tokenizer on the normalized file the trainer reads.
    normalized = store.read_bytes(file.normalized_key).decode().splitlines()
    assert len(normalized) == 12
    counts = [encoder.count_tokens(json.loads(line)) for line in normalized]
    assert statistics["total_tokens"] == sum(counts)
    assert statistics["tokens_per_example"]["min"] == min(counts)
    assert statistics["tokens_per_example"]["max"] == max(counts)


def test_an_invalid_file_ends_in_error_with_its_errors_by_line(upload, alice_api, acme, encoder):
    lines = chat_lines(12)
    lines[2] = "{not json"
    lines[6] = json.dumps({"messages": [{"role": "robot", "content": "beep"}]})

    file_id = upload(jsonl(lines)).json()["id"]
    body = alice_api.get(f"/v1/files/{file_id}").json()

    assert body["status"] == "error"
    assert body["status_details"] == (
        "line 3: invalid JSON (Expecting property name enclosed in double quotes at column 2) "
        "(and 1 more error)"
    )
    report = body["validation"]
    assert report["ok"] is False
    assert [(error["line"], error["code"]) for error in report["errors"]] == [
        (3, "invalid_json"),
        (7, "invalid_role"),
    ]
    assert report["errors"][1]["message"] == (
        'line 7: "messages[0].role" must be one of system, user, assistant (got "robot")'
    )
    assert report["statistics"]["n_invalid_examples"] == 2
    # No normalized file for a dataset that cannot train.
    file = File.objects.for_tenant(acme).get(public_id=file_id)
    assert file.normalized_key == ""
    assert not get_artifact_store().exists(f"files/{file_id}/normalized.jsonl")


def test_too_few_examples_is_a_file_error(upload, alice_api, encoder):
    file_id = upload(jsonl(chat_lines(3))).json()["id"]
    body = alice_api.get(f"/v1/files/{file_id}").json()
    assert body["status"] == "error"
    assert body["status_details"] == "the file has 3 examples; fine-tuning needs at least 10"


def test_user_data_is_stored_without_dataset_validation(upload, acme):
    response = upload(b"anything at all \x00\xff", name="notes.bin", purpose="user_data")
    body = response.json()
    assert body["status"] == "processed"
    assert body["validation"] is None
    assert File.objects.for_tenant(acme).get(public_id=body["id"]).normalized_key == ""


# -- errors a caller can cause ------------------------------------------------------------


def assert_nothing_stored(artifact_store):
    assert File.unscoped.count() == 0
    assert stored_files(artifact_store) == []


@pytest.mark.parametrize(
    ("content", "name", "purpose", "param", "code", "message"),
    [
        pytest.param(
            None,
            "x",
            "fine-tune",
            "file",
            "missing_required_parameter",
            "Missing required parameter: 'file'. Send the file as the multipart/form-data "
            "field 'file'.",
            id="no file",
        ),
        pytest.param(
            jsonl(chat_lines()),
            "train.jsonl",
            None,
            "purpose",
            "missing_required_parameter",
            "Missing required parameter: 'purpose'. Use 'fine-tune' or 'user_data' or 'batch'.",
            id="no purpose",
        ),
        pytest.param(
            jsonl(chat_lines()),
            "train.jsonl",
            "assistants",
            "purpose",
            "invalid_value",
            "Invalid purpose 'assistants': use 'fine-tune' or 'user_data' or 'batch'.",
            id="bad purpose",
        ),
        pytest.param(
            jsonl(chat_lines()),
            "out.jsonl",
            "batch_output",
            "purpose",
            "invalid_value",
            "Invalid purpose 'batch_output': use 'fine-tune' or 'user_data' or 'batch'.",
            id="batch output is the platform's to write",
        ),
        pytest.param(
            b"",
            "empty.jsonl",
            "fine-tune",
            "file",
            "empty_file",
            "The file 'empty.jsonl' is empty.",
            id="empty file",
        ),
    ],
)
def test_bad_uploads_are_refused_and_store_nothing(
    upload, artifact_store, content, name, purpose, param, code, message
):
    refused(upload(content, name=name, purpose=purpose), 400, param, code, message)
    assert_nothing_stored(artifact_store)


def test_a_batch_file_has_openais_size_limit(upload, artifact_store, settings):
    settings.BATCH_FILE_MAX_BYTES = 100
    refused(
        upload(b"x" * 101, name="batch.jsonl", purpose="batch"),
        413,
        "file",
        "file_too_large",
        "The file is 101 bytes; a 'batch' file may be at most 100 bytes.",
    )
    assert_nothing_stored(artifact_store)
    assert upload(b"x" * 101, name="data.jsonl", purpose="user_data").status_code == 200


def test_a_json_body_is_not_a_file(alice_api):
    for body in ({"file": "x", "purpose": "fine-tune"}, [1]):
        response = alice_api.post("/v1/files", body, format="json")
        assert response.status_code == 415
        assert (
            error_of(response)["message"] == 'Unsupported media type "application/json" in request.'
        )


def test_too_large_by_content_length_is_refused_before_the_body_is_read(
    alice_key, settings, artifact_store
):
    settings.FILE_MAX_BYTES = 1000
    # The header claims 10 GB; the body is never read, so its real size does not matter.
    response = raw_post(
        b"",
        "multipart/form-data; boundary=xyz",
        alice_key,
        CONTENT_LENGTH=str(10 * 1024**3),
    )
    refused(
        response,
        413,
        "file",
        "file_too_large",
        "The upload is 10,737,418,240 bytes; a file may be at most 1,000 bytes.",
    )
    assert_nothing_stored(artifact_store)


def test_too_large_by_content_length_with_a_real_body(upload, settings, artifact_store):
    settings.FILE_MAX_BYTES = 1000
    response = upload(b"x" * 200_000)
    assert response.status_code == 413
    assert error_of(response)["code"] == "file_too_large"
    assert error_of(response)["message"].endswith("a file may be at most 1,000 bytes.")
    assert_nothing_stored(artifact_store)


def test_too_large_while_streaming(upload, settings, artifact_store):
    # Within the multipart allowance, so the Content-Length check lets it through.
    settings.FILE_MAX_BYTES = 1000
    response = upload(b"x" * 1001)
    refused(
        response, 413, "file", "file_too_large", "The file is larger than the limit of 1,000 bytes."
    )
    assert_nothing_stored(artifact_store)


def test_exactly_the_limit_is_accepted(upload, settings):
    settings.FILE_MAX_BYTES = 1000
    assert upload(b"x" * 1000, purpose="user_data").json()["bytes"] == 1000


def test_storage_quota_of_the_organization(upload, acme, artifact_store):
    acme.storage_quota_bytes = 1500
    acme.save()
    first = upload(b"a" * 1000, purpose="user_data")
    assert first.status_code == 200

    response = upload(b"b" * 600, purpose="user_data")

    refused(
        response,
        400,
        "file",
        "storage_quota_exceeded",
        "Storage quota exceeded: the organization stores 1,000 bytes of its 1,500-byte quota, "
        "and this file is 600 bytes. Delete files you no longer need, or ask for a larger quota.",
    )
    assert File.unscoped.count() == 1
    assert len(stored_files(artifact_store)) == 1
    # Exactly filling the quota is fine.
    assert upload(b"c" * 500, purpose="user_data").status_code == 200


def test_storage_quota_defaults_to_the_platform_setting(upload, settings, artifact_store):
    settings.STORAGE_QUOTA_BYTES = 10
    response = upload(b"x" * 11, purpose="user_data")
    assert response.status_code == 400
    assert error_of(response)["code"] == "storage_quota_exceeded"
    assert "of its 10-byte quota" in error_of(response)["message"]
    assert_nothing_stored(artifact_store)


def test_the_quota_is_checked_again_under_the_lock(upload, acme, monkeypatch, artifact_store):
    """Another upload commits while this one copies its bytes: the locked check refuses it."""
    backend = type(artifact_store)
    acme.storage_quota_bytes = 1000
    acme.save()
    copy = backend.write_stream

    def copy_while_another_upload_lands(self, key, chunks, **kwargs):
        result = copy(self, key, chunks, **kwargs)
        File.objects.create(
            tenant=acme,
            purpose="user_data",
            filename="concurrent.txt",
            bytes=900,
            sha256="0" * 64,
            storage_key="files/elsewhere/original",
        )
        StoredArtifact.objects.create(tenant=acme, key="files/elsewhere", bytes=900)
        return result

    monkeypatch.setattr(backend, "write_stream", copy_while_another_upload_lands)

    response = upload(b"x" * 200, purpose="user_data")

    assert response.status_code == 400
    assert error_of(response)["code"] == "storage_quota_exceeded"
    assert "stores 900 bytes" in error_of(response)["message"]
    assert list(File.unscoped.values_list("filename", flat=True)) == ["concurrent.txt"]
    assert stored_files(artifact_store) == []


def test_a_failure_after_the_copy_leaves_no_row_and_no_bytes(upload, monkeypatch, artifact_store):
    def broken_save(self, *args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(File, "save", broken_save)
    with pytest.raises(RuntimeError, match="the database went away"):
        upload(jsonl(chat_lines()))
    assert_nothing_stored(artifact_store)


def test_the_files_scope_is_required(api, acme, alice, upload):
    models_only = make_key(acme, alice, scopes=["models"])
    response = api(models_only).get("/v1/files")
    assert response.status_code == 403
    assert error_of(response)["code"] == "missing_scope"
    read_only = make_key(acme, alice, read_only=True)
    assert api(read_only).get("/v1/files").status_code == 200
    refused = upload(b"x", purpose="user_data", key=read_only)
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "read_only_key"
