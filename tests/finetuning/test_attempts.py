"""Attempts are fenced: a requeue starts a new attempt, only the attempt dispatched last
may report, and what a superseded attempt left is deleted when the next one starts."""

from pathlib import Path

from gpu_inference import protocol
from gpu_inference.worker import ControlReporter, PathScrubber
from tests.finetuning.conftest import lost, report
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning import control, scheduling, services
from tokenmill.finetuning.models import FineTuningJob, JobCheckpoint, JobEvent


def reporter_for(job_id: str, attempt: int) -> ControlReporter:
    """The reporter of a worker running `attempt` of the job."""
    spec = {"job_id": job_id, "attempt": attempt, "output_prefix": "unused"}
    return ControlReporter(
        spec, get_artifact_store(), lambda r: None, PathScrubber(), work_dir=Path("/nonexistent")
    )


def requeue(job, settings, capture) -> FineTuningJob:
    lost(job, settings)
    with capture(execute=True):
        assert scheduling.requeue_or_fail_lost_jobs()["requeued"] == 1
    job.refresh_from_db()
    return job


def test_a_requeue_starts_a_new_attempt_that_a_stale_started_cannot_flip(
    dispatched, settings, django_capture_on_commit_callbacks
):
    job = requeue(dispatched, settings, django_capture_on_commit_callbacks)
    assert (job.status, job.attempt, job.dispatched_at) == ("queued", 2, None)
    # The old worker's "started", redelivered: it must not make the job run without a slot.
    assert not report(job, "started", {"worker": "gpu-1"}, attempt=1, seq=1)
    assert not report(job, "heartbeat", attempt=1, seq=2)
    job.refresh_from_db()
    assert (job.status, job.dispatched_at, job.last_heartbeat_at) == ("queued", None, None)
    # Nor can the new attempt report before it is dispatched.
    assert not report(job, "started", {"worker": "gpu-2"}, attempt=2, seq=1)
    assert FineTuningJob.unscoped.get(pk=job.pk).status == "queued"


def test_the_requeue_tells_the_old_worker_to_stand_down(
    dispatched, settings, django_capture_on_commit_callbacks
):
    old = reporter_for(dispatched.public_id, 1)
    assert not old.should_cancel()
    requeue(dispatched, settings, django_capture_on_commit_callbacks)
    assert old.should_cancel()


def test_a_cancel_stops_only_its_own_attempt(
    dispatched, settings, django_capture_on_commit_callbacks
):
    control.request_stop(dispatched.public_id, 1)
    job = requeue(dispatched, settings, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.jobs_dispatch()
    second = reporter_for(job.public_id, 2)
    assert not second.should_cancel()


def test_checkpoints_and_metrics_are_kept_per_attempt_and_the_superseded_ones_deleted(
    dispatched, settings, sent, django_capture_on_commit_callbacks
):
    store = get_artifact_store()
    old_folder = f"{protocol.attempt_prefix(dispatched.public_id, 1)}/checkpoints/epoch-1"
    store.write_bytes(f"{old_folder}/adapter_config.json", b"{}")
    assert report(dispatched, "metrics", {"data": {"step": 2, "total_steps": 4}}, seq=2)
    assert report(dispatched, "checkpoint", {"step": 2, "epoch": 1, "path": old_folder}, seq=3)

    job = requeue(dispatched, settings, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.jobs_dispatch()
    job.refresh_from_db()
    assert sent[-1]["attempt"] == 2
    # The old attempt's rows survive until the new attempt has really started...
    assert JobCheckpoint.unscoped.filter(job=job, attempt=1).count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert report(job, "started", {"worker": "gpu-2"}, seq=1)
    # ...then its checkpoints, metrics events and folder are gone.
    assert not JobCheckpoint.unscoped.filter(job=job).exists()
    assert not JobEvent.unscoped.filter(job=job, type="metrics").exists()
    assert not store.exists(protocol.attempt_prefix(job.public_id, 1))

    new_folder = f"{protocol.attempt_prefix(job.public_id, 2)}/checkpoints/epoch-1"
    assert report(job, "checkpoint", {"step": 2, "epoch": 1, "path": new_folder}, seq=2)
    [checkpoint] = JobCheckpoint.unscoped.filter(job=job)
    assert (checkpoint.attempt, checkpoint.step_number, checkpoint.artifact_key) == (
        2,
        2,
        new_folder,
    )
    # The requeue's warning stays: it is the job's history, not a dead artifact.
    assert job.events.filter(message__contains="stopped responding").exists()


def test_an_operator_retry_is_a_new_attempt_too(
    dispatched, django_capture_on_commit_callbacks, sent
):
    assert report(dispatched, "outcome", {"status": "failed", "code": "x", "message": "y"}, seq=5)
    dispatched.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        services.job_retry(job=dispatched)
    dispatched.refresh_from_db()
    assert (dispatched.status, dispatched.attempt, dispatched.attempt_base) == ("queued", 2, 1)
    assert sent[-1]["attempt"] == 2
    assert not report(dispatched, "started", {"worker": "gpu-1"}, attempt=1, seq=1)
