import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tokenmill.files.models import File
from tokenmill.files.storage import get_artifact_store, normalized_key, original_key
from tokenmill.finetuning import control, reports, scheduling, services
from tokenmill.finetuning.models import FineTuningJob
from tokenmill.finetuning.params import JobRequest

FAKE_TRAINER = "tests.finetuning.fake_trainer.run"


def chat_examples(n: int = 20) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is the code word number {i}?"},
                {"role": "assistant", "content": f"The code word is falcon {i}."},
            ]
        }
        for i in range(n)
    ]


def make_training_file(tenant, examples=None, *, purpose="fine-tune", status="processed") -> File:
    """A validated fine-tune file in the artifact store, as the upload path leaves it."""
    examples = chat_examples() if examples is None else examples
    body = "".join(json.dumps(example) + "\n" for example in examples).encode()
    file = File(
        tenant=tenant, purpose=purpose, filename="train.jsonl", bytes=len(body), sha256="0" * 64
    )
    store = get_artifact_store()
    store.write_bytes(original_key(file.public_id), body)
    file.storage_key = original_key(file.public_id)
    if status == "processed":
        store.write_bytes(normalized_key(file.public_id), body)
        file.normalized_key = normalized_key(file.public_id)
    file.status = status
    file.status_details = "line 1: invalid JSON" if status == "error" else ""
    file.save()
    return file


@pytest.fixture(autouse=True)
def _no_heartbeats_in_process(request, settings):
    """Tasks run in-process here, so a heartbeat thread would write to the test database
    from a connection of its own that nobody closes (worker tests set their own period)."""
    if request.node.get_closest_marker("worker") is None:
        settings.JOB_HEARTBEAT_SECONDS = 3600


@pytest.fixture
def fake_trainer(settings, monkeypatch):
    settings.TRAINER = FAKE_TRAINER
    monkeypatch.setenv("FAKE_TRAINER_MODE", "ok")
    return monkeypatch


@pytest.fixture
def training_file(acme, artifact_store, demo_model_path):
    return make_training_file(acme)


@pytest.fixture
def sent(monkeypatch):
    """The specs handed to the GPU queue, instead of a broker."""
    specs: list[dict] = []
    monkeypatch.setattr(control, "enqueue_train", specs.append)
    return specs


def queued_job(tenant) -> FineTuningJob:
    file = make_training_file(tenant)
    job = services.job_create(
        tenant=tenant, request=JobRequest(model="tiny-chat", training_file=file.public_id)
    )
    services.job_prepare(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "queued"
    return job


def report(
    job: FineTuningJob, kind: str, payload: dict | None = None, *, seq: int = 1, attempt=None
):
    """What a GPU worker's reporter sends, recorded as the control queue would."""
    return reports.record(
        {
            "job_id": job.public_id,
            "attempt": job.attempt if attempt is None else attempt,
            "seq": seq,
            "kind": kind,
            "at": time.time(),
            "payload": payload or {},
        }
    )


def lost(job: FineTuningJob, settings) -> None:
    """The job's worker has not been heard from for longer than the heartbeat timeout."""
    settings.JOB_HEARTBEAT_TIMEOUT = 60
    FineTuningJob.unscoped.filter(pk=job.pk).update(
        last_heartbeat_at=timezone.now() - timedelta(seconds=61)
    )


@pytest.fixture
def dispatched(acme, artifact_store, demo_model_path, sent, django_capture_on_commit_callbacks):
    """A job dispatched as attempt 1 whose worker started it."""
    job = queued_job(acme)
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.jobs_dispatch()
    job.refresh_from_db()
    assert job.attempt == 1 and job.dispatched_at
    assert report(job, "started", {"worker": "gpu-1"}, seq=1)
    return job
