"""Reports are never lost and never doubled; preparation follows validation."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from tests.finetuning.conftest import make_training_file, report
from tokenmill.files import tasks as file_tasks
from tokenmill.files.models import File
from tokenmill.finetuning import job_spec, reports, scheduling, services, tasks
from tokenmill.finetuning.models import FineTuningJob, JobCheckpoint, JobEvent
from tokenmill.finetuning.params import JobRequest
from workers.celery import app


@pytest.fixture
def retries_in_process():
    """A task's retry runs at once, in-process (eager tasks otherwise raise it)."""
    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = True


def test_a_redelivered_report_creates_nothing_twice(dispatched):
    job = dispatched
    metrics = {"data": {"step": 1, "total_steps": 4, "train_loss": 1.5}}
    event = {"level": "info", "message": "Training started: 20 examples"}
    checkpoint = {"step": 2, "epoch": 1, "path": "jobs/x/attempt-1/checkpoints/epoch-1"}
    for _ in range(3):  # the broker delivers each report again, and again
        assert report(job, "metrics", metrics, seq=2)
        assert report(job, "event", event, seq=3)
        assert report(job, "checkpoint", checkpoint, seq=4)
        assert report(job, "started", {"worker": "gpu-1"}, seq=1)
    assert JobEvent.unscoped.filter(job=job, type="metrics").count() == 1
    assert JobEvent.unscoped.filter(job=job, message=event["message"]).count() == 1
    assert JobEvent.unscoped.filter(job=job, message="Fine-tuning job started").count() == 1
    assert JobCheckpoint.unscoped.filter(job=job).count() == 1
    # Two different reports with the same content are two rows: the report's number decides.
    assert report(job, "event", event, seq=5)
    assert JobEvent.unscoped.filter(job=job, message=event["message"]).count() == 2


def test_a_redelivered_outcome_registers_one_model(dispatched):
    outcome = {"status": "succeeded", "trained_tokens": 10, "output": "jobs/x/attempt-1/final"}
    assert report(dispatched, "outcome", outcome, seq=9)
    assert not report(dispatched, "outcome", outcome, seq=9)
    dispatched.refresh_from_db()
    assert dispatched.status == "succeeded"
    assert dispatched.events.filter(message="The job has successfully completed").count() == 1


def test_the_database_refuses_a_second_row_for_one_report(dispatched):
    fields = {"tenant_id": dispatched.tenant_id, "job": dispatched, "attempt": 1, "report_seq": 7}
    JobEvent.objects.create(message="first", **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        JobEvent.objects.create(message="again", **fields)
    JobCheckpoint.objects.create(
        tenant_id=dispatched.tenant_id, job=dispatched, attempt=1, step_number=3, epoch=1
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        JobCheckpoint.objects.create(
            tenant_id=dispatched.tenant_id, job=dispatched, attempt=1, step_number=3, epoch=1
        )


@pytest.mark.parametrize(
    "error",
    [OperationalError("server closed the connection"), BrokerError("broker unreachable")],
    ids=["database", "broker"],
)
def test_the_report_task_retries_transient_errors(
    dispatched, monkeypatch, retries_in_process, error
):
    real = reports.record
    calls = []

    def flaky(message):
        calls.append(message)
        if len(calls) < 3:
            raise error
        return real(message)

    monkeypatch.setattr(reports, "record", flaky)
    message = {
        "job_id": dispatched.public_id,
        "attempt": 1,
        "seq": 2,
        "kind": "outcome",
        "at": timezone.now().timestamp(),
        "payload": {"status": "failed", "code": "out_of_memory", "message": "smaller batch"},
    }
    result = tasks.record_report.apply(args=[message])
    assert result.get() is True and len(calls) == 3
    dispatched.refresh_from_db()
    assert dispatched.status == "failed" and dispatched.error["code"] == "out_of_memory"


def test_the_report_task_declares_its_retries():
    task = tasks.record_report
    assert task.max_retries >= 5 and task.retry_backoff
    for error in (OperationalError, BrokerError):
        assert issubclass(error, task.autoretry_for)


def validating_job(tenant, file) -> FineTuningJob:
    return services.job_create(
        tenant=tenant, request=JobRequest(model="tiny-chat", training_file=file.public_id)
    )


def test_preparation_retries_a_transient_error(
    retries_in_process,
    acme,
    artifact_store,
    demo_model_path,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    real = job_spec.dataset_statistics
    calls = []

    def flaky(job):
        calls.append(job)
        if len(calls) == 1:
            raise OperationalError("the database went away")
        return real(job)

    monkeypatch.setattr(job_spec, "dataset_statistics", flaky)
    monkeypatch.setattr(scheduling, "jobs_dispatch", lambda: [])
    file = make_training_file(acme)
    with django_capture_on_commit_callbacks(execute=True):
        job = validating_job(acme, file)
    job.refresh_from_db()
    assert job.status == "queued" and len(calls) == 2


def test_preparation_fails_a_job_for_good_on_a_permanent_error(
    retries_in_process,
    acme,
    artifact_store,
    demo_model_path,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    def broken(job):
        raise RuntimeError("a bug")

    monkeypatch.setattr(job_spec, "dataset_statistics", broken)
    file = make_training_file(acme)
    calls = []
    monkeypatch.setattr(tasks.prepare_job, "retry", lambda *a, **k: calls.append(k))
    with django_capture_on_commit_callbacks(execute=True):
        job = validating_job(acme, file)
    job.refresh_from_db()
    assert calls == []  # a bug is not retried
    assert job.status == "failed"
    assert job.error["code"] == "preparation_failed"
    assert job.error["message"] == (
        "The job could not be prepared for training; ask support to retry it."
    )


def test_a_job_is_prepared_when_its_files_validation_ends(
    acme, artifact_store, demo_model_path, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(scheduling, "jobs_dispatch", lambda: [])
    file = make_training_file(acme, status="uploaded")
    with django_capture_on_commit_callbacks(execute=True):
        job = validating_job(acme, file)
    job.refresh_from_db()
    assert job.status == "validating_files"  # it did not poll: it waits for the trigger
    with django_capture_on_commit_callbacks(execute=True):
        assert file_tasks.validate_file.apply(args=[file.pk]).get() == "processed"
    job.refresh_from_db()
    assert job.status == "queued", list(job.events.values_list("message", flat=True))


def test_a_file_that_fails_validation_fails_its_job_at_once(
    acme, artifact_store, demo_model_path, django_capture_on_commit_callbacks
):
    file = make_training_file(acme, status="uploaded")
    from tokenmill.files.storage import get_artifact_store

    get_artifact_store().write_bytes(file.storage_key, b"not json\n")
    with django_capture_on_commit_callbacks(execute=True):
        job = validating_job(acme, file)
    with django_capture_on_commit_callbacks(execute=True):
        assert file_tasks.validate_file.apply(args=[file.pk]).get() == "error"
    job.refresh_from_db()
    assert job.status == "failed" and job.error["code"] == "invalid_file"
    assert job.error["param"] == "training_file"


def test_the_safety_net_prepares_a_job_whose_trigger_was_lost(
    acme, artifact_store, demo_model_path, settings, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(scheduling, "jobs_dispatch", lambda: [])
    file = make_training_file(acme)
    File.unscoped.filter(pk=file.pk).update(status="uploaded")
    job = validating_job(acme, file)  # no commit hooks run: the first try is lost too
    File.unscoped.filter(pk=file.pk).update(status="processed")  # ...and so is the trigger
    settings.JOB_PREPARE_GRACE = 60
    assert scheduling.jobs_prepare_stalled()["prepared_again"] == 0  # not yet: within grace
    FineTuningJob.unscoped.filter(pk=job.pk).update(
        created_at=timezone.now() - timedelta(seconds=61)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduling.jobs_prepare_stalled()["prepared_again"] == 1
    assert FineTuningJob.unscoped.get(pk=job.pk).status == "queued"


def test_the_safety_net_asks_once_per_grace_period(acme, artifact_store, demo_model_path, settings):
    file = make_training_file(acme)
    job = validating_job(acme, file)
    FineTuningJob.unscoped.filter(pk=job.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.JOB_PREPARE_GRACE + 1)
    )
    assert scheduling.jobs_prepare_stalled()["prepared_again"] == 1
    assert scheduling.jobs_prepare_stalled()["prepared_again"] == 0


def test_a_job_whose_file_is_never_validated_fails_after_the_timeout(
    acme, artifact_store, demo_model_path, settings
):
    file = make_training_file(acme, status="uploaded")
    job = validating_job(acme, file)
    FineTuningJob.unscoped.filter(pk=job.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.JOB_FILE_VALIDATION_TIMEOUT + 1)
    )
    assert scheduling.jobs_prepare_stalled()["validation_timed_out"] == 1
    job.refresh_from_db()
    assert job.status == "failed" and job.error["code"] == "file_validation_timeout"
    assert job.error["message"] == "The training files were still being validated after 30 minutes."
