"""/v1/files: list, retrieve, download and delete."""

import pytest

from tests.files.helpers import FILE_KEYS, chat_lines, jsonl, refused, stored_files
from tokenmill.files.models import File
from tokenmill.files.storage import get_artifact_store


@pytest.fixture
def five_files(upload) -> list[dict]:
    """Oldest first: three user_data files and two fine-tune files, alternating."""
    purposes = ["user_data", "fine-tune", "user_data", "fine-tune", "user_data"]
    return [
        upload(f"file {i}".encode(), name=f"f{i}.txt", purpose=purpose).json()
        for i, purpose in enumerate(purposes)
    ]


def ids(response) -> list[str]:
    return [row["id"] for row in response.json()["data"]]


def test_list_is_newest_first_by_default(alice_api, five_files):
    response = alice_api.get("/v1/files")
    body = response.json()
    assert body["object"] == "list"
    assert ids(response) == [f["id"] for f in reversed(five_files)]
    assert body["has_more"] is False
    assert body["first_id"] == five_files[-1]["id"]
    assert body["last_id"] == five_files[0]["id"]
    assert set(body["data"][0]) == FILE_KEYS


def test_list_in_ascending_order(alice_api, five_files):
    assert ids(alice_api.get("/v1/files?order=asc")) == [f["id"] for f in five_files]


def test_list_filters_by_purpose(alice_api, five_files):
    fine_tune = [f["id"] for f in five_files if f["purpose"] == "fine-tune"]
    assert ids(alice_api.get("/v1/files?purpose=fine-tune&order=asc")) == fine_tune
    assert len(ids(alice_api.get("/v1/files?purpose=user_data"))) == 3


def test_list_pages_with_limit_and_after(alice_api, five_files):
    newest_first = [f["id"] for f in reversed(five_files)]
    first = alice_api.get("/v1/files?limit=2").json()
    assert [row["id"] for row in first["data"]] == newest_first[:2]
    assert first["has_more"] is True
    second = alice_api.get(f"/v1/files?limit=2&after={first['last_id']}").json()
    assert [row["id"] for row in second["data"]] == newest_first[2:4]
    third = alice_api.get(f"/v1/files?limit=2&after={second['last_id']}").json()
    assert [row["id"] for row in third["data"]] == newest_first[4:]
    assert third["has_more"] is False
    ascending = alice_api.get(f"/v1/files?order=asc&limit=2&after={five_files[1]['id']}")
    assert ids(ascending) == [five_files[2]["id"], five_files[3]["id"]]


@pytest.mark.parametrize(
    ("query", "param", "message"),
    [
        ("order=newest", "order", "Invalid order 'newest': use 'asc' or 'desc'."),
        (
            "purpose=assistants",
            "purpose",
            "Invalid purpose 'assistants': use 'fine-tune' or 'user_data' or 'batch' or "
            "'batch_output'.",
        ),
        ("limit=0", "limit", "limit must be between 1 and 10000, got 0."),
        ("after=file-nope", "after", "No object with id 'file-nope' to page after."),
    ],
)
def test_list_refuses_bad_parameters(alice_api, query, param, message):
    refused(alice_api.get(f"/v1/files?{query}"), 400, param, "invalid_value", message)


def test_retrieve_and_missing(alice_api, five_files):
    file = five_files[0]
    assert alice_api.get(f"/v1/files/{file['id']}").json() == file
    missing = alice_api.get("/v1/files/file-missing")
    refused(missing, 404, "id", "not_found", "No file with id 'file-missing'.")


def test_content_gives_back_the_exact_bytes(upload, alice_api):
    content = bytes(range(256)) * 300 + b"\r\n\x00 the end"  # binary, larger than one chunk
    file_id = upload(content, name="blob.bin", purpose="user_data").json()["id"]

    response = alice_api.get(f"/v1/files/{file_id}/content", HTTP_ACCEPT="application/binary")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Length"] == str(len(content))
    assert response["Content-Disposition"] == 'attachment; filename="blob.bin"'


def test_content_of_a_missing_file_is_a_json_404_whatever_the_accept(alice_api):
    response = alice_api.get("/v1/files/file-missing/content", HTTP_ACCEPT="application/binary")
    refused(response, 404, "id", "not_found", "No file with id 'file-missing'.")


def test_delete_removes_the_row_and_then_the_bytes(
    upload, alice_api, acme, artifact_store, encoder, django_capture_on_commit_callbacks
):
    file_id = upload(jsonl(chat_lines())).json()["id"]
    file = File.objects.for_tenant(acme).get(public_id=file_id)
    store = get_artifact_store()
    assert store.exists(file.storage_key) and store.exists(file.normalized_key)

    with django_capture_on_commit_callbacks(execute=True) as on_commit:
        response = alice_api.delete(f"/v1/files/{file_id}")
        # The bytes go only once the deletion is committed; a rollback keeps them.
        assert len(stored_files(artifact_store)) == 2

    assert len(on_commit) == 1
    assert response.status_code == 200
    assert response.json() == {"id": file_id, "object": "file", "deleted": True}
    assert not File.unscoped.filter(public_id=file_id).exists()
    assert stored_files(artifact_store) == []
    assert alice_api.delete(f"/v1/files/{file_id}").status_code == 404


def test_deleting_a_file_a_fine_tuning_job_uses_is_refused(
    upload, alice_api, acme, monkeypatch, artifact_store
):
    """Jobs hold their files with on_delete=RESTRICT; Django's RestrictedError stands in for them."""
    from types import SimpleNamespace

    from django.db.models import RestrictedError

    file_id = upload(b"data", purpose="user_data").json()["id"]
    jobs = [SimpleNamespace(public_id="ftjob-b"), SimpleNamespace(public_id="ftjob-a")]

    def protected(self, *args, **kwargs):
        raise RestrictedError("restricted", jobs)

    monkeypatch.setattr(File, "delete", protected)
    response = alice_api.delete(f"/v1/files/{file_id}")

    refused(
        response,
        409,
        "id",
        "file_in_use",
        f"File {file_id!r} cannot be deleted: it is used by fine-tuning jobs ftjob-a, ftjob-b.",
    )
    assert File.unscoped.filter(public_id=file_id).exists()
    assert len(stored_files(artifact_store)) == 1
