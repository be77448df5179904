"""The official openai SDK's Batch API against the live gateway, with real Celery workers
(default: validation; batch: the run) sending the lines to real vLLM servers."""

import io
import json
import time

import openai
import pytest
from django.conf import settings

from tests.batches.conftest import chat_line, jsonl
from tests.processes import start_worker, stop_worker, store_environment, worker_database_url
from tokenmill.metering.models import LedgerEntry
from tokenmill.metering.services import metering_run
from workers.celery import app

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
TERMINAL = {"completed", "failed", "expired", "cancelled"}


@pytest.fixture
def workers(served, artifact_store, tmp_path):
    """A default worker (validation) and a batch worker (the run), as production runs them."""
    with app.connection_for_write() as connection:
        for queue in ("default", "batch"):
            connection.default_channel.queue_purge(queue)
    env = {
        "DATABASE_URL": worker_database_url(),
        **store_environment(settings),
        "MODEL_ROOT": str(settings.MODEL_ROOT),
    }
    started = [
        start_worker("default", env=env, log=tmp_path / "default.log"),
        start_worker("batch", env=env, log=tmp_path / "batch.log"),
    ]
    yield started
    for process in started:
        stop_worker(process)


def wait_done(client: openai.OpenAI, batch_id: str, workers, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in TERMINAL:
            return batch
        assert all(process.poll() is None for process in workers), "a worker died"
        assert time.monotonic() < deadline, f"batch still {batch.status}: {batch.request_counts}"
        time.sleep(0.5)


def embedding_line(custom_id: str, text: str) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "all-MiniLM-L6-v2", "input": text},
    }


def test_the_sdk_runs_a_batch_file_to_an_output_file(served, workers, alice_key, acme, charlie_key):
    client = openai.OpenAI(base_url=served.url + "/v1", api_key=alice_key, max_retries=0)
    rows = [chat_line(f"chat-{i}", f"Tell me about day {i}.", temperature=0) for i in range(4)]
    uploaded = client.files.create(file=("chats.jsonl", io.BytesIO(jsonl(rows))), purpose="batch")
    assert uploaded.purpose == "batch"

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly"},
    )
    assert batch.id.startswith("batch_")
    assert batch.status == "validating"  # not eager: the workers have it

    done = wait_done(client, batch.id, workers)
    assert done.status == "completed", done.errors
    assert done.request_counts.total == 4 and done.request_counts.completed == 4
    assert done.completed_at >= done.in_progress_at >= done.created_at
    assert done.metadata == {"job": "nightly"}
    output = [
        json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()
    ]
    assert sorted(line["custom_id"] for line in output) == [f"chat-{i}" for i in range(4)]
    for line in output:
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        answer = line["response"]["body"]
        assert answer["object"] == "chat.completion"
        assert answer["choices"][0]["message"]["content"].strip()
    output_file = client.files.retrieve(done.output_file_id)
    assert output_file.purpose == "batch_output"
    assert done.output_file_id in [f.id for f in client.files.list(purpose="batch_output")]
    assert batch.id in [b.id for b in client.batches.list()]

    # Metered as kind `batch`, under the key that created it.
    metering_run()
    (entry,) = LedgerEntry.unscoped.filter(tenant=acme)
    assert (entry.kind, entry.requests) == ("batch", 4)
    assert entry.prompt_tokens > 0 and entry.completion_tokens > 0

    # Isolated: another organization's key sees neither the batch nor its output.
    other = openai.OpenAI(base_url=served.url + "/v1", api_key=charlie_key, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        other.files.content(done.output_file_id)


def test_the_sdk_runs_embeddings_and_reports_bad_lines(served, workers, alice_key):
    client = openai.OpenAI(base_url=served.url + "/v1", api_key=alice_key, max_retries=0)
    rows = [embedding_line("sky", "The sky is blue."), embedding_line("sea", "The sea is deep.")]
    uploaded = client.files.create(file=("emb.jsonl", io.BytesIO(jsonl(rows))), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    done = wait_done(client, batch.id, workers)
    assert done.status == "completed"
    output = [
        json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()
    ]
    vectors = {
        line["custom_id"]: line["response"]["body"]["data"][0]["embedding"] for line in output
    }
    assert set(vectors) == {"sky", "sea"}
    assert all(len(vector) == 384 for vector in vectors.values())

    bad = client.files.create(
        file=("bad.jsonl", io.BytesIO(jsonl([rows[0], {**rows[1], "url": "/v1/completions"}]))),
        purpose="batch",
    )
    failed = wait_done(
        client,
        client.batches.create(
            input_file_id=bad.id, endpoint="/v1/embeddings", completion_window="24h"
        ).id,
        workers,
    )
    assert failed.status == "failed"
    assert [(error.line, error.param) for error in failed.errors.data] == [(2, "url")]
    assert failed.output_file_id is None
