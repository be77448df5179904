"""The platform's side of the GPU protocol (gpu_inference.protocol): markers and sends.

Tasks are sent by name, so nothing here imports the tasks module; the GPU workers
answer with reports that tasks.record_report hands to reports.record.
"""

import json

from gpu_inference import protocol
from tokenmill.files.storage import get_artifact_store
from workers.celery import app


def _send(name: str, *args, queue: str | None = None) -> None:
    # A signature by name runs the registered task (eagerly in tests) or sends it.
    options = {"queue": queue, "routing_key": queue} if queue else {}
    app.signature(name, args=args).apply_async(**options)


def job_folder_key(job_id: str) -> str:
    """Everything of a job in the store: markers, every attempt's checkpoints and model."""
    return protocol.job_prefix(job_id)


def request_stop(job_id: str, attempt: int) -> None:
    get_artifact_store().write_bytes(protocol.cancel_marker_key(job_id, attempt), b"cancel")


def mark_current_attempt(job_id: str, attempt: int) -> None:
    """A worker still running an older attempt stands down at its next step."""
    get_artifact_store().write_bytes(protocol.attempt_marker_key(job_id), str(attempt).encode())


def stored_outcome(job_id: str, attempt: int) -> protocol.Report | None:
    """The outcome report the attempt's worker wrote before sending it, if it did."""
    store = get_artifact_store()
    key = protocol.outcome_key(job_id, attempt)
    if not store.exists(key):
        return None
    with store.open(key) as stored:
        return json.load(stored)


def delete_superseded_attempts(job_id: str, current: int) -> None:
    store = get_artifact_store()
    for attempt in range(1, current):
        store.delete(protocol.attempt_prefix(job_id, attempt))
        store.delete(protocol.cancel_marker_key(job_id, attempt))


def enqueue_prepare(job_pk: int) -> None:
    _send(protocol.TASK_PREPARE, job_pk)


def enqueue_dispatch() -> None:
    _send(protocol.TASK_DISPATCH)


def enqueue_train(spec: protocol.JobSpec) -> None:
    mark_current_attempt(spec["job_id"], spec["attempt"])
    _send(protocol.TASK_TRAIN, spec, queue=protocol.GPU_QUEUE)


def send_report(report: protocol.Report) -> None:
    _send(protocol.TASK_REPORT, report, queue=protocol.CONTROL_QUEUE)
