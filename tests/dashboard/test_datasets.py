"""The datasets pages: upload (with and without JavaScript), the validation report, delete."""

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from gpu_inference.formats import ExampleEncoder
from tests.files.helpers import chat_lines, classification_csv, jsonl
from tokenmill.files.models import File
from tokenmill.files.selectors import storage_used_bytes
from tokenmill.finetuning import services as finetuning_services
from tokenmill.finetuning.params import JobRequest

pytestmark = pytest.mark.django_db

DATASETS = reverse("dashboard:datasets")


@pytest.fixture(autouse=True)
def _private_store(artifact_store, demo_model_path):
    """Uploads go to this test's own artifact store; validation counts with the demo tokenizer."""


@pytest.fixture
def upload(django_capture_on_commit_callbacks):
    """Post the dashboard's upload form, running the validation the commit triggers."""

    def _upload(client, content, *, name="train.jsonl", purpose="fine-tune", as_json=False):
        data = {"purpose": purpose}
        if content is not None:
            data["file"] = SimpleUploadedFile(
                name, content.encode() if isinstance(content, str) else content
            )
        headers = {"HTTP_ACCEPT": "application/json"} if as_json else {}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(DATASETS, data, **headers)

    return _upload


def detail_url(file: File) -> str:
    return reverse("dashboard:dataset-detail", args=[file.public_id])


def text_of(response) -> str:
    """The page as text, tags removed and whitespace collapsed, for phrases across elements."""
    page = re.sub(r"<[^>]+>", " ", response.content.decode()).replace("\xa0", " ")
    return " ".join(page.split())


def test_an_upload_without_javascript_redirects_to_its_report(alice_client, acme, upload):
    response = upload(alice_client, jsonl(chat_lines(12)))

    file = File.unscoped.get(tenant=acme)
    assert response.status_code == 302
    assert response["Location"] == detail_url(file)
    assert (file.filename, file.purpose, file.status) == ("train.jsonl", "fine-tune", "processed")
    page = alice_client.get(response["Location"])
    assert "Uploaded train.jsonl." in page.content.decode()
    assert "Ready for fine-tuning." in text_of(page)


def test_an_upload_with_javascript_answers_json(alice_client, acme, upload):
    response = upload(alice_client, jsonl(chat_lines(12)), as_json=True)

    assert response.status_code == 201
    file = File.unscoped.get(tenant=acme)
    # Validated after the commit, which in a test comes after the response.
    assert response.json() == {
        "id": file.public_id,
        "filename": "train.jsonl",
        "status": "uploaded",
        "url": detail_url(file),
    }
    assert File.unscoped.get(pk=file.pk).status == "processed"


def test_a_good_file_shows_its_statistics(alice_client, acme, upload, demo_model_path):
    lines = chat_lines(12)
    upload(alice_client, jsonl(lines))
    encoder = ExampleEncoder(demo_model_path)
    counts = [encoder.count_tokens(json.loads(line)) for line in lines]

    page = text_of(alice_client.get(detail_url(File.unscoped.get(tenant=acme))))

    assert "Examples 12 chat" in page
    assert f"Total tokens {sum(counts):,}" in page
    mean = f"{sum(counts) / len(counts):.1f}".removesuffix(".0")
    assert f"min {min(counts)} · mean {mean} · max {max(counts)}" in page
    assert "Over the context length 0 longer than 256 tokens" in page
    assert "Errors" not in page


def test_a_bad_file_shows_its_errors_by_line(alice_client, acme, upload):
    lines = chat_lines(12)
    lines[2] = '{"messages": [}'
    lines[6] = json.dumps({"messages": [{"role": "user", "content": "Hi"}]})
    response = upload(alice_client, jsonl(lines))

    file = File.unscoped.get(tenant=acme)
    assert file.status == "error"
    page = alice_client.get(response["Location"]).content.decode()
    rows = re.findall(
        r"<tr><td class=\"num mono\">(\d+)</td><td>(.*?)</td><td><code>(.*?)</code>", page
    )
    assert [(line, code) for line, _, code in rows] == [
        ("3", "invalid_json"),
        ("7", "missing_assistant_message"),
    ]
    assert rows[0][1].startswith("Invalid JSON (")
    assert rows[1][1] == "At least one message must have role &quot;assistant&quot;"
    assert "This file cannot be used for fine-tuning." in page
    assert "Validation found 2 errors" in page
    assert 'Errors <span class="count">2</span>' in page
    assert "Fine-tune on this file" not in page


def test_only_the_first_hundred_errors_are_listed_with_the_total(alice_client, acme, upload):
    response = upload(alice_client, jsonl(['{"messages": [}'] * 150))

    page = alice_client.get(response["Location"]).content.decode()
    assert page.count('<td class="num mono">') == 100
    assert "Showing the first 100 of 150 errors." in page
    assert 'Errors <span class="count">150</span>' in page


def test_a_classification_file_shows_its_labels_and_personal_data_warnings(
    alice_client, acme, upload
):
    content = classification_csv(12) + '"Mail me at jane.doe@example.com",positive\n'
    response = upload(alice_client, content, name="reviews.csv")

    page = text_of(alice_client.get(response["Location"]))
    assert "Labels 2" in page
    assert "positive 7 (53.8 %)" in page
    assert "negative 6 (46.2 %)" in page
    assert "Warnings 1" in page
    assert "Found 1 likely e-mail address (e.g. line 14); remove personal data" in page


def test_upload_errors_are_shown_beside_their_fields(alice_client, acme, upload):
    no_file = upload(alice_client, None)
    assert no_file.status_code == 400
    assert '<p class="error">Choose a file to upload.</p>' in no_file.content.decode()

    empty = upload(alice_client, b"", name="empty.jsonl")
    assert empty.status_code == 400
    assert "The file &#x27;empty.jsonl&#x27; is empty." in empty.content.decode()

    as_json = upload(alice_client, b"", name="empty.jsonl", as_json=True)
    assert as_json.status_code == 400
    assert as_json.json() == {
        "errors": {"file": [{"message": "The file 'empty.jsonl' is empty.", "code": ""}]}
    }
    assert not File.unscoped.exists()


def test_the_storage_quota_is_shown_and_enforced(alice_client, acme, upload):
    acme.storage_quota_bytes = 5000
    acme.save()
    upload(alice_client, jsonl(chat_lines(12)))
    used = storage_used_bytes(tenant=acme)
    assert used > File.unscoped.get(tenant=acme).bytes  # its normalized copy counts too

    page = alice_client.get(DATASETS).content.decode().replace("\xa0", " ")
    assert re.search(r"<strong>[\d.]+ KB</strong> of 4.9 KB", page)
    assert f'aria-valuenow="{round(100 * used / 5000)}"' in page

    refused = upload(alice_client, jsonl(chat_lines(12)))
    assert refused.status_code == 400
    assert "Storage quota exceeded" in refused.content.decode()
    assert File.unscoped.count() == 1


def test_the_list_shows_each_file(alice_client, acme, upload):
    upload(alice_client, jsonl(chat_lines(12)))
    upload(alice_client, "just some notes", name="notes.txt", purpose="user_data")
    upload(alice_client, "oops", name="bad.jsonl")

    page = alice_client.get(DATASETS).content.decode().replace("\xa0", " ")

    rows = re.findall(r'<tr id="file-.*?</tr>', page, re.S)
    assert len(rows) == 3
    bad, notes, train = rows  # newest first
    assert "train.jsonl" in train and "fine-tune" in train and ">Ready<" in train
    assert ">12<" in train
    assert "notes.txt" in notes and "user_data" in notes and ">Stored<" in notes
    assert "15 bytes" in notes
    assert "bad.jsonl" in bad and ">Invalid<" in bad
    assert 'Files <span class="count">3</span>' in page


def test_a_pending_file_polls_its_status(alice_client, acme, upload):
    file = upload_pending(alice_client, upload)

    page = alice_client.get(detail_url(file)).content.decode()
    status_url = reverse("dashboard:dataset-status", args=[file.public_id])
    assert f'data-file-poll="{status_url}"' in page
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in page
    assert "Validating…" in page

    response = alice_client.get(status_url)
    assert response.json() == {"id": file.public_id, "status": "uploaded", "status_details": None}
    assert "no-store" in response["Cache-Control"]


def upload_pending(client, upload) -> File:
    """A file whose validation has not run yet (the commit's task not executed)."""
    client.post(DATASETS, {"purpose": "fine-tune", "file": SimpleUploadedFile("a.jsonl", b"{}\n")})
    return File.unscoped.get(status="uploaded")


def test_delete_asks_then_deletes(alice_client, acme, upload):
    upload(alice_client, jsonl(chat_lines(12)))
    file = File.unscoped.get(tenant=acme)
    url = reverse("dashboard:dataset-delete", args=[file.public_id])

    confirm = alice_client.get(url).content.decode()
    assert "Delete “train.jsonl”?" in confirm
    response = alice_client.post(url)

    assert response.status_code == 302
    assert response["Location"] == DATASETS
    assert not File.unscoped.exists()
    assert "Deleted train.jsonl." in alice_client.get(DATASETS).content.decode()


def test_a_file_in_use_says_so_in_place(alice_client, acme, upload):
    upload(alice_client, jsonl(chat_lines(12)))
    file = File.unscoped.get(tenant=acme)
    job = finetuning_services.job_create(
        tenant=acme, request=JobRequest(model="tiny-chat", training_file=file.public_id)
    )

    response = alice_client.post(reverse("dashboard:dataset-delete", args=[file.public_id]))

    assert response.status_code == 409
    page = response.content.decode()
    assert '<div class="alert alert-danger" role="alert" id="delete-error">' in page
    assert (
        f"File &#x27;{file.public_id}&#x27; cannot be deleted: it is used by fine-tuning job "
        f"{job.public_id}." in page
    )
    assert f'href="{reverse("dashboard:job-detail", args=[job.public_id])}"' in page
    assert File.unscoped.filter(pk=file.pk).exists()


def test_a_viewer_sees_files_but_cannot_upload_or_delete(dave_client, alice_client, acme, upload):
    upload(alice_client, jsonl(chat_lines(12)))
    file = File.unscoped.get(tenant=acme)

    page = dave_client.get(DATASETS).content.decode()
    assert "train.jsonl" in page
    assert "data-upload" not in page
    assert "view-only access" in page
    detail = dave_client.get(detail_url(file)).content.decode()
    assert "Total tokens" in detail
    assert "Delete" not in detail and "Fine-tune on this file" not in detail

    assert upload(dave_client, jsonl(chat_lines(12)), name="dave.jsonl").status_code == 403
    delete = dave_client.post(reverse("dashboard:dataset-delete", args=[file.public_id]))
    assert delete.status_code == 403
    assert File.unscoped.count() == 1


@pytest.mark.parametrize("name", ["dataset-detail", "dataset-status", "dataset-delete"])
def test_another_organizations_file_is_not_found(charlie_client, alice_client, acme, upload, name):
    upload(alice_client, jsonl(chat_lines(12)))
    file = File.unscoped.get(tenant=acme)
    url = reverse(f"dashboard:{name}", args=[file.public_id])

    assert charlie_client.get(url).status_code == 404
    assert charlie_client.post(url).status_code in (404, 405)
    assert File.unscoped.filter(pk=file.pk).exists()
    assert "train.jsonl" not in charlie_client.get(DATASETS).content.decode()
