"""A batch worker process killed mid-batch: the sweeper hands the batch to another worker,
which finishes it without losing or repeating a stored line."""

import json
import signal
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from tests.batches.conftest import chat_line
from tests.gateway.helpers import wait_for
from tests.processes import start_worker, stop_worker, store_environment, worker_database_url
from tokenmill.batches import run, services
from tokenmill.batches.models import Batch, BatchChunk
from workers.celery import app

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_killed_batch_worker_loses_and_repeats_no_stored_line(
    backend, upload_batch_file, create_batch, api, alice_key, tmp_path, monkeypatch
):
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("batch")
    # The test validates in-process and sends the run itself.
    monkeypatch.setattr(run, "send", lambda name, pk: None)
    monkeypatch.setattr(services, "send", lambda name, pk: None)
    backend.state.first_byte_delay = 0.3  # slow enough to be killed mid-batch
    env = {
        "DATABASE_URL": worker_database_url(),
        **store_environment(settings),
        "BATCH_CHUNK_LINES": "2",
        "BATCH_CONCURRENCY": "1",
    }
    rows = [chat_line(f"r{i}") for i in range(8)]
    batch_id = create_batch(upload_batch_file(rows)).json()["id"]
    batch = Batch.unscoped.get(public_id=batch_id)
    assert run.batch_validate(batch=batch) == "in_progress"

    first = start_worker("batch", env=env, log=tmp_path / "first.log")
    try:
        app.signature("batches.run", args=(batch.pk,)).apply_async()
        wait_for(
            lambda: BatchChunk.unscoped.filter(batch=batch).count() >= 1,
            timeout=60,
            what="a chunk stored by the first worker",
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=20)
    finally:
        stop_worker(first)
    stored = BatchChunk.unscoped.filter(batch=batch).count()
    assert stored < 4, "the batch finished before the worker was killed"
    assert Batch.unscoped.get(pk=batch.pk).status == "in_progress"

    # The dead run's heartbeat goes stale; the sweeper sends the batch to a new worker.
    Batch.unscoped.filter(pk=batch.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.BATCH_STALL_SECONDS + 1)
    )
    monkeypatch.undo()
    second = start_worker("batch", env=env, log=tmp_path / "second.log")
    try:
        assert run.batches_sweep() == 1
        deadline = time.monotonic() + 120
        while Batch.unscoped.get(pk=batch.pk).status != "completed":
            assert second.poll() is None, "the second worker died"
            assert time.monotonic() < deadline, "the batch did not complete"
            time.sleep(0.2)
    finally:
        stop_worker(second)

    body = api(alice_key).get(f"/v1/batches/{batch_id}").json()
    assert body["request_counts"] == {"total": 8, "completed": 8, "failed": 0}
    response = api(alice_key).get(f"/v1/files/{body['output_file_id']}/content")
    output = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [line["custom_id"] for line in output] == [f"r{i}" for i in range(8)]
    # Stored chunks were sent once; only the chunk in flight at the kill was sent again.
    assert 8 <= len(backend.state.requests) <= 8 + 2
