"""Messages between the platform and GPU workers.

GPU workers need only the broker and the artifact store. The platform sends them a
self-contained job spec on the `gpu` queue; they answer with report tasks on the
`control` queue. Stopping a job is a marker in the artifact store that the worker
checks between steps: it also tells a worker whose attempt was superseded (after a
requeue) to stand down.
"""

from tokenmill.files.storage import get_artifact_store


def job_folder_key(job_id: str) -> str:
    """Everything of a job in the store: markers, every attempt's checkpoints and model."""
    return f"jobs/{job_id}"


def cancel_marker_key(job_id: str) -> str:
    return f"jobs/{job_id}/control/cancel"


def attempt_marker_key(job_id: str) -> str:
    return f"jobs/{job_id}/control/attempt"


def request_stop(job_id: str) -> None:
    get_artifact_store().write_bytes(cancel_marker_key(job_id), b"cancel")


def clear_stop(job_id: str) -> None:
    get_artifact_store().delete(cancel_marker_key(job_id))


def mark_current_attempt(job_id: str, attempt: int) -> None:
    get_artifact_store().write_bytes(attempt_marker_key(job_id), str(attempt).encode())


def enqueue_prepare(job_pk: int) -> None:
    from tokenmill.finetuning.tasks import prepare_job

    prepare_job.delay(job_pk)


def enqueue_dispatch() -> None:
    from tokenmill.finetuning.tasks import dispatch_jobs

    dispatch_jobs.delay()


def enqueue_train(spec: dict) -> None:
    from tokenmill.finetuning.tasks import train

    mark_current_attempt(spec["job_id"], spec["attempt"])
    train.apply_async(args=[spec], queue="gpu", routing_key="gpu")


def send_report(job_id: str, attempt: int, kind: str, payload: dict) -> None:
    from tokenmill.finetuning.tasks import record_report

    record_report.apply_async(
        args=[job_id, attempt, kind, payload], queue="control", routing_key="control"
    )
