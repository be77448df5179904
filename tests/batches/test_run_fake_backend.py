"""A batch end to end in-process (eager tasks) against a fake model server: the lines go
through the gateway's request path, and the output file has one line per custom_id."""

import json

import pytest

from tests.batches.conftest import chat_line
from tokenmill.batches.models import Batch, BatchChunk
from tokenmill.files.models import StoredArtifact


def content(api, key, file_id) -> list[dict]:
    response = api(key).get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200
    return [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]


@pytest.mark.django_db(transaction=True)
def test_a_batch_runs_every_line_to_the_output_file(
    backend, upload_batch_file, create_batch, api, alice_key, settings, artifact_store
):
    settings.BATCH_CHUNK_LINES = 2
    file_id = upload_batch_file([chat_line(f"req-{i}") for i in range(5)])

    created = create_batch(file_id, metadata={"run": "nightly"})

    assert created.status_code == 200, created.content
    body = api(alice_key).get(f"/v1/batches/{created.json()['id']}").json()
    assert body["status"] == "completed"
    assert body["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    assert body["metadata"] == {"run": "nightly"}
    assert body["error_file_id"] is None
    lines = content(api, alice_key, body["output_file_id"])
    assert [line["custom_id"] for line in lines] == [f"req-{i}" for i in range(5)]
    assert all(line["response"]["status_code"] == 200 for line in lines)
    assert all(line["id"].startswith("batch_req_") for line in lines)
    assert lines[0]["response"]["body"]["object"] == "chat.completion"
    # Sent at vLLM's batch priority, behind live traffic (priority 0).
    sent = [request["body"] for request in backend.state.requests]
    assert len(sent) == 5
    assert {request["priority"] for request in sent} == {settings.BATCH_PRIORITY}
    batch = Batch.unscoped.get(public_id=body["id"])
    assert BatchChunk.unscoped.filter(batch=batch).count() == 3
    # The chunks are gone from the store once joined; the files count in storage.
    assert not artifact_store.exists(BatchChunk.unscoped.filter(batch=batch).first().output_key)
    assert {row.key for row in StoredArtifact.unscoped.filter(tenant=batch.tenant)} == {
        f"files/{file_id}",
        f"files/{batch.output_file.public_id}",
    }


@pytest.mark.django_db(transaction=True)
def test_a_completions_batch_runs_through_the_completions_endpoint(
    backend, upload_batch_file, create_batch, api, alice_key
):
    rows = [
        {
            "custom_id": f"p{i}",
            "method": "POST",
            "url": "/v1/completions",
            "body": {"model": "tiny-chat", "prompt": f"Once upon a time {i}", "max_tokens": 4},
        }
        for i in range(2)
    ]
    body = create_batch(upload_batch_file(rows), endpoint="/v1/completions").json()
    assert body["status"] == "completed"
    assert body["endpoint"] == "/v1/completions"
    assert [request["path"] for request in backend.state.requests] == ["/v1/completions"] * 2
    lines = content(api, alice_key, body["output_file_id"])
    assert [line["custom_id"] for line in lines] == ["p0", "p1"]
    assert lines[0]["response"]["body"]["object"] == "text_completion"
