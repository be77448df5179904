"""A broker blip when a task is sent after commit never fails the request, and the
reaper's sweeps send what was lost."""

import json
from datetime import timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from tests.finetuning.conftest import chat_examples, make_training_file
from tokenmill.files import services as file_services
from tokenmill.files import tasks as file_tasks
from tokenmill.files.models import File
from tokenmill.finetuning import control, scheduling, services
from tokenmill.finetuning.models import FineTuningJob
from tokenmill.finetuning.params import JobRequest


def broker_down(*args, **kwargs):
    raise BrokerError("[Errno 111] Connection refused")


def dataset() -> SimpleUploadedFile:
    body = "".join(json.dumps(example) + "\n" for example in chat_examples())
    return SimpleUploadedFile("train.jsonl", body.encode())


def test_an_upload_survives_a_broker_blip_and_the_sweep_validates_it(
    alice_api,
    acme,
    artifact_store,
    demo_model_path,
    settings,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    with monkeypatch.context() as blip:
        blip.setattr(file_tasks.validate_file, "delay", broker_down)
        with django_capture_on_commit_callbacks(execute=True):
            response = alice_api.post(
                "/v1/files", {"file": dataset(), "purpose": "fine-tune"}, format="multipart"
            )
    assert response.status_code == 200, response.content  # OpenAI answers an upload with 200
    assert response.json()["status"] == "uploaded"
    file = File.objects.for_tenant(acme).get(public_id=response.json()["id"])

    settings.FILE_VALIDATION_GRACE = 60
    assert file_services.files_validation_resend() == 0  # within the grace period
    later = timezone.now() + timedelta(seconds=61)
    with django_capture_on_commit_callbacks(execute=True):
        assert file_services.files_validation_resend(now=later) == 1
    file.refresh_from_db()
    assert file.status == "processed", file.status_details
    assert file_services.files_validation_resend(now=later) == 0  # nothing left to send


def test_the_sweep_sends_a_file_once_per_grace_period_and_again_after_a_failed_send(
    acme, artifact_store, demo_model_path, settings, monkeypatch
):
    file = make_training_file(acme, status="uploaded")
    settings.FILE_VALIDATION_GRACE = 60
    later = timezone.now() + timedelta(seconds=61)
    with monkeypatch.context() as blip:
        blip.setattr(file_tasks.validate_file, "delay", broker_down)
        assert file_services.files_validation_resend(now=later) == 0  # broker still down
    sent: list[int] = []
    monkeypatch.setattr(file_tasks.validate_file, "delay", sent.append)
    assert file_services.files_validation_resend(now=later) == 1
    assert file_services.files_validation_resend(now=later) == 0  # once per period
    assert sent == [file.pk]


def test_a_job_survives_a_broker_blip_at_creation_and_the_safety_net_prepares_it(
    alice_api, acme, training_file, settings, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(scheduling, "jobs_dispatch", lambda: [])
    with monkeypatch.context() as blip:
        blip.setattr(control, "_send", broker_down)
        with django_capture_on_commit_callbacks(execute=True):
            response = alice_api.post(
                "/v1/fine_tuning/jobs",
                {"model": "tiny-chat", "training_file": training_file.public_id},
                format="json",
            )
    assert response.status_code == 200, response.content
    job = FineTuningJob.objects.for_tenant(acme).get(public_id=response.json()["id"])
    assert job.status == "validating_files"
    later = timezone.now() + timedelta(seconds=settings.JOB_PREPARE_GRACE + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduling.jobs_prepare_stalled(now=later)["prepared_again"] == 1
    job.refresh_from_db()
    assert job.status == "queued"


def test_jobs_waiting_for_their_files_cannot_starve_the_safety_net(
    acme, globex, artifact_store, demo_model_path, settings
):
    blocking = scheduling.STALLED_BATCH + 1
    unvalidated = make_training_file(acme, status="uploaded")
    FineTuningJob.unscoped.bulk_create(
        FineTuningJob(
            tenant=acme,
            base_model=services.fine_tunable_model(model_id="tiny-chat"),
            training_file=unvalidated,
            seed=1,
        )
        for _ in range(blocking)
    )
    validated = make_training_file(globex)
    theirs = services.job_create(
        tenant=globex, request=JobRequest(model="tiny-chat", training_file=validated.public_id)
    )
    FineTuningJob.unscoped.filter(pk=theirs.pk).update(
        created_at=timezone.now() + timedelta(seconds=1)  # the newest of all
    )
    later = timezone.now() + timedelta(seconds=settings.JOB_PREPARE_GRACE + 2)
    counts = scheduling.jobs_prepare_stalled(now=later)
    assert counts == {"prepared_again": 1, "validation_timed_out": 0}
    assert FineTuningJob.unscoped.get(pk=theirs.pk).prepare_requested_at == later
