"""The Batches pages: the list with progress and downloads, a batch's page, its polled
status, and the file download they link to."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tokenmill.batches.models import Batch
from tokenmill.files.models import File
from tokenmill.files.storage import get_artifact_store

pytestmark = pytest.mark.usefixtures("artifact_store")

LINE = {
    "custom_id": "q1",
    "method": "POST",
    "url": "/v1/chat/completions",
    "body": {"model": "tiny-chat", "messages": [{"role": "user", "content": "Hi"}]},
}


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def stored_file(tenant, body: bytes, *, purpose: str, filename: str) -> File:
    key = f"files/{tenant.public_id}/{filename}"
    get_artifact_store().write_bytes(key, body)
    return File.objects.for_tenant(tenant).create(
        tenant=tenant,
        purpose=purpose,
        filename=filename,
        bytes=len(body),
        sha256="0" * 64,
        storage_key=key,
        status=File.Status.PROCESSED,
    )


def make_batch(tenant, **fields) -> Batch:
    input_file = stored_file(
        tenant, (json.dumps(LINE) + "\n").encode(), purpose="batch", filename="requests.jsonl"
    )
    defaults = {
        "endpoint": Batch.Endpoint.CHAT,
        "input_file": input_file,
        "expires_at": timezone.now() + timedelta(hours=24),
    }
    return Batch.objects.for_tenant(tenant).create(tenant=tenant, **{**defaults, **fields})


def test_an_organization_without_batches_is_shown_how_to_start_one(alice_client):
    page = alice_client.get("/batches/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "No batches yet" in html
    assert "client.batches.create(" in html
    assert 'aria-current="page">Batches<' in html


def test_the_list_shows_progress_counts_and_result_downloads(acme, alice_client):
    running = make_batch(
        acme,
        status=Batch.Status.IN_PROGRESS,
        request_counts_total=200,
        request_counts_completed=90,
        request_counts_failed=10,
    )
    output = stored_file(acme, b'{"custom_id": "q1"}\n', purpose="batch_output", filename="o.jsonl")
    errors = stored_file(acme, b'{"custom_id": "q2"}\n', purpose="batch_output", filename="e.jsonl")
    done = make_batch(
        acme,
        status=Batch.Status.COMPLETED,
        request_counts_total=2,
        request_counts_completed=1,
        request_counts_failed=1,
        output_file=output,
        error_file=errors,
    )
    html = alice_client.get("/batches/").content.decode()

    # The running batch: half done, polled, no files yet.
    assert f'data-batch-poll="/batches/{running.public_id}/status/"' in html
    assert 'aria-valuenow="50"' in html
    assert "100 of 200 done 90 completed 10 failed" in text(html)
    assert "When done" in html
    # The finished one: not polled, both files to download.
    assert f'data-batch-poll="/batches/{done.public_id}/status/"' not in html
    assert f'href="/datasets/{output.public_id}/download/"' in html
    assert f'href="/datasets/{errors.public_id}/download/"' in html
    assert "In progress" in html and "Completed" in html


def test_a_batch_page_lists_its_bad_lines_and_timeline(acme, alice_client):
    batch = make_batch(
        acme,
        status=Batch.Status.FAILED,
        failed_at=timezone.now(),
        errors=[
            {
                "code": "invalid_value",
                "message": "'temperature' must be at most 2.",
                "param": "body.temperature",
                "line": 3,
            },
            {
                "code": "duplicate_custom_id",
                "message": "Repeats line 1.",
                "param": "custom_id",
                "line": 7,
            },
        ],
        metadata={"project": "nightly"},
    )
    page = alice_client.get(f"/batches/{batch.public_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Nothing ran" in html
    assert "&#x27;temperature&#x27; must be at most 2." in html
    assert '<td class="num">7</td>' in html
    assert "duplicate_custom_id" in html
    assert "Failed</dt>" in html and "Created</dt>" in html
    assert "nightly" in html
    assert "data-batch-poll" not in html  # ended: nothing to poll


def test_the_status_endpoint_gives_the_counts_the_page_draws(acme, alice_client):
    batch = make_batch(
        acme,
        status=Batch.Status.IN_PROGRESS,
        request_counts_total=4,
        request_counts_completed=1,
        request_counts_failed=0,
    )
    response = alice_client.get(f"/batches/{batch.public_id}/status/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert response.json() == {
        "id": batch.public_id,
        "total": 4,
        "completed": 1,
        "failed": 0,
        "done": 1,
        "percent": 25,
        "status": "in_progress",
        "status_label": "In progress",
        "terminal": False,
    }


def test_a_viewer_sees_batches_and_downloads_results(acme, dave_client):
    output = stored_file(acme, b'{"custom_id": "q1"}\n', purpose="batch_output", filename="o.jsonl")
    batch = make_batch(acme, status=Batch.Status.COMPLETED, output_file=output)
    assert dave_client.get(f"/batches/{batch.public_id}/").status_code == 200
    download = dave_client.get(f"/datasets/{output.public_id}/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b'{"custom_id": "q1"}\n'
    assert download["Content-Disposition"] == 'attachment; filename="o.jsonl"'
    assert download["Content-Length"] == str(output.bytes)


def test_another_organizations_batches_and_files_are_not_found(acme, charlie_client):
    output = stored_file(acme, b"secret\n", purpose="batch_output", filename="o.jsonl")
    batch = make_batch(acme, status=Batch.Status.COMPLETED, output_file=output)
    for url in (
        f"/batches/{batch.public_id}/",
        f"/batches/{batch.public_id}/status/",
        f"/datasets/{output.public_id}/download/",
    ):
        assert charlie_client.get(url).status_code == 404, url
    assert batch.public_id not in charlie_client.get("/batches/").content.decode()


def test_a_file_whose_bytes_are_gone_is_not_found(acme, alice_client):
    file = stored_file(acme, b"x\n", purpose="batch", filename="gone.jsonl")
    get_artifact_store().delete(file.storage_key)
    assert alice_client.get(f"/datasets/{file.public_id}/download/").status_code == 404


def test_logged_out_visitors_are_sent_to_log_in(client):
    response = client.get("/batches/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_a_member_runs_a_batch_on_a_requests_file(acme, alice, alice_client):
    requests_file = stored_file(
        acme, (json.dumps(LINE) + "\n").encode(), purpose="batch", filename="nightly.jsonl"
    )
    page = alice_client.get(f"/batches/?input_file={requests_file.public_id}").content.decode()
    assert f'<option value="{requests_file.public_id}" selected>' in page
    assert '<details class="card section create-panel" id="create-batch" open>' in page

    response = alice_client.post(
        "/batches/", {"input_file": requests_file.public_id, "endpoint": "/v1/chat/completions"}
    )
    batch = Batch.objects.for_tenant(acme).get()
    assert response.status_code == 302
    assert response["Location"] == f"/batches/{batch.public_id}/"
    assert batch.input_file == requests_file
    assert batch.created_by_user == alice
    assert batch.completion_window == "24h"
    assert "its lines are being checked" in alice_client.get(response["Location"]).content.decode()


def test_the_batch_form_refuses_a_file_that_is_not_a_requests_file(acme, globex, alice_client):
    training = stored_file(acme, b"{}\n", purpose="fine-tune", filename="train.jsonl")
    foreign = stored_file(globex, b"{}\n", purpose="batch", filename="theirs.jsonl")
    stored_file(acme, b"{}\n", purpose="batch", filename="ours.jsonl")
    for file in (training, foreign):
        response = alice_client.post(
            "/batches/", {"input_file": file.public_id, "endpoint": "/v1/chat/completions"}
        )
        assert response.status_code == 400
        assert "Select a valid choice." in response.content.decode()
    response = alice_client.post("/batches/", {"input_file": "", "endpoint": "/v1/nope"})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not Batch.objects.for_tenant(acme).exists()


def test_without_a_requests_file_the_form_says_where_to_upload_one(alice_client):
    html = alice_client.get("/batches/").content.decode()
    assert "No requests file yet." in html
    assert "Create batch" not in html


def test_a_viewer_cannot_create_or_cancel_batches(acme, dave_client):
    requests_file = stored_file(acme, b"{}\n", purpose="batch", filename="r.jsonl")
    batch = make_batch(acme, status=Batch.Status.IN_PROGRESS)
    assert "New batch" not in dave_client.get("/batches/").content.decode()
    assert "Cancel batch" not in dave_client.get(f"/batches/{batch.public_id}/").content.decode()
    created = dave_client.post(
        "/batches/", {"input_file": requests_file.public_id, "endpoint": "/v1/chat/completions"}
    )
    cancelled = dave_client.post(f"/batches/{batch.public_id}/cancel/")
    assert created.status_code == cancelled.status_code == 403
    batch.refresh_from_db()
    assert batch.status == Batch.Status.IN_PROGRESS
    assert Batch.objects.for_tenant(acme).count() == 1


def test_cancelling_asks_first_then_stops_the_batch(acme, alice_client):
    batch = make_batch(acme, status=Batch.Status.IN_PROGRESS, request_counts_total=10)
    detail = alice_client.get(f"/batches/{batch.public_id}/").content.decode()
    assert f'href="/batches/{batch.public_id}/cancel/"' in detail
    confirm = alice_client.get(f"/batches/{batch.public_id}/cancel/").content.decode()
    assert f"Cancel {batch.public_id}?" in confirm
    assert "finished line" in confirm

    response = alice_client.post(f"/batches/{batch.public_id}/cancel/", follow=True)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.CANCELLING
    assert f"Cancelling {batch.public_id}." in response.content.decode()


def test_a_finished_batch_cannot_be_cancelled_and_says_why(acme, alice_client):
    batch = make_batch(acme, status=Batch.Status.COMPLETED)
    assert "Cancel batch" not in alice_client.get(f"/batches/{batch.public_id}/").content.decode()
    response = alice_client.post(f"/batches/{batch.public_id}/cancel/", follow=True)
    assert f"Batch {batch.public_id} is completed and can no longer be cancelled." in (
        response.content.decode()
    )
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED


def test_a_requests_file_offers_to_run_it_as_a_batch(acme, alice_client):
    requests_file = stored_file(acme, b"{}\n", purpose="batch", filename="r.jsonl")
    html = alice_client.get(f"/datasets/{requests_file.public_id}/").content.decode()
    assert f'href="/batches/?input_file={requests_file.public_id}#create-batch"' in html
    assert "checked when a batch is created on it" in html
    assert f'href="/datasets/{requests_file.public_id}/download/"' in html
