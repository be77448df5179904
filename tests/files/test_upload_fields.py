"""POST /v1/files with a field sent twice: refused, naming the field, and nothing stored."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.files.helpers import chat_lines, jsonl, raw_post, refused, stored_files
from tokenmill.files.models import File


def test_a_repeated_purpose_is_refused_naming_it(alice_api, acme, artifact_store):
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
    assert stored_files(artifact_store) == []
    assert not File.unscoped.exists()


def test_a_repeated_file_is_refused_naming_it(alice_api, acme, artifact_store):
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
    assert stored_files(artifact_store) == []
    assert not File.unscoped.exists()


@pytest.mark.parametrize("field", ["file", "purpose"])
def test_the_dashboard_upload_refuses_a_repeated_field(alice, acme, field, artifact_store):
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
    assert stored_files(artifact_store) == []
    assert not File.unscoped.exists()


def part(headers: bytes, content: bytes) -> bytes:
    return b"--XyZ\r\n" + headers + b"\r\n\r\n" + content + b"\r\n"


def upload_body(filename: bytes, *, preamble: bytes = b"") -> bytes:
    return (
        preamble
        + part(b'Content-Disposition: form-data; name="purpose"', b"fine-tune")
        + part(
            b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
            b"Content-Type: application/jsonl",
            jsonl(chat_lines(12)),
        )
        + b"--XyZ--\r\n"
    )


# A field ahead that puts the file part's headers across the parser's first two reads.
AHEAD = part(b'Content-Disposition: form-data; name="note"', b"n" * (64 * 1024 - 150))


@pytest.mark.parametrize("preamble", [b"", AHEAD], ids=["first", "across-reads"])
def test_a_file_name_that_is_not_utf8_is_refused_saying_so(
    alice_key, acme, artifact_store, preamble
):
    response = raw_post(
        upload_body(b"caf\xe9.jsonl", preamble=preamble),
        "multipart/form-data; boundary=XyZ",
        alice_key,
    )
    refused(
        response,
        400,
        "file",
        "invalid_filename",
        "The file name is not valid UTF-8: name the file in UTF-8 (or send it as "
        "filename*=UTF-8''...) and upload it again.",
    )
    assert stored_files(artifact_store) == []
    assert not File.unscoped.exists()


def test_a_utf8_file_name_is_kept(alice_key, acme, artifact_store):
    response = raw_post(
        upload_body("café.jsonl".encode()), "multipart/form-data; boundary=XyZ", alice_key
    )
    assert response.status_code == 200, response.content
    assert response.json()["filename"] == "café.jsonl"


def test_the_watch_finds_headers_split_across_any_reads():
    from tokenmill.files.multipart import PartHeaderWatch

    body = upload_body(b"caf\xe9.jsonl", preamble=b"junk\r\n")

    class OneByteAtATime:
        def __init__(self, data):
            self.data = data

        def read(self, size=-1):
            chunk, self.data = self.data[:1], self.data[1:]
            return chunk

    watch = PartHeaderWatch(OneByteAtATime(body), b"XyZ")
    assert b"".join(iter(lambda: watch.read(1), b"")) == body
    assert watch.undecodable_file_fields == ["file"]
