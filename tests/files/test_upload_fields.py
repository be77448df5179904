"""POST /v1/files with a field sent twice: refused, naming the field, and nothing stored."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.files.helpers import chat_lines, jsonl, refused, stored_files
from tokenmill.files.models import File


def test_a_repeated_purpose_is_refused_naming_it(alice_api, acme, artifact_root):
    response = alice_api.post(
        "/v1/files",
        {
            "file": SimpleUploadedFile("train.jsonl", jsonl(chat_lines(12))),
            "purpose": ["user_data", "fine-tune"],
        },
        format="multipart",
    )
    refused(
        response,
        400,
        "purpose",
        "duplicate_parameter",
        "The request has 2 'purpose' fields; send exactly one.",
    )
    assert stored_files(artifact_root) == []
    assert not File.objects.exists()


def test_a_repeated_file_is_refused_naming_it(alice_api, acme, artifact_root):
    response = alice_api.post(
        "/v1/files",
        {
            "file": [
                SimpleUploadedFile("a.jsonl", jsonl(chat_lines(12))),
                SimpleUploadedFile("b.jsonl", b"not the same"),
            ],
            "purpose": "user_data",
        },
        format="multipart",
    )
    refused(
        response,
        400,
        "file",
        "duplicate_parameter",
        "The request has 2 'file' fields; send exactly one.",
    )
    assert stored_files(artifact_root) == []
    assert not File.objects.exists()


@pytest.mark.parametrize("field", ["file", "purpose"])
def test_the_dashboard_upload_refuses_a_repeated_field(alice, acme, field, artifact_root):
    from django.test import Client

    client = Client()
    client.force_login(alice)
    files = [SimpleUploadedFile("a.jsonl", jsonl(chat_lines(12)))]
    purposes = ["user_data"]
    if field == "file":
        files.append(SimpleUploadedFile("b.jsonl", b"other"))
    else:
        purposes.append("fine-tune")
    response = client.post(
        "/datasets/", {"file": files, "purpose": purposes}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][field] == [
        {"message": f"The request has 2 '{field}' fields; send exactly one.", "code": ""}
    ]
    assert stored_files(artifact_root) == []
    assert not File.objects.exists()
