"""Evaluation reports without a model server: the held-out split stated on the job, the
report waiting for a replica, and `/api/v1/fine_tuning/jobs/<id>/evaluation`."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.finetuning.conftest import make_training_file, queued_job
from tests.finetuning.evaluation_data import stored_evaluation
from tokenmill.catalog.services import replica_register
from tokenmill.finetuning import evaluation, scheduling, services
from tokenmill.finetuning.models import FineTuningJob, JobEvaluation
from tokenmill.finetuning.params import JobRequest


def succeeded_job(tenant) -> FineTuningJob:
    job = services.job_create(
        tenant=tenant,
        request=JobRequest(model="tiny-chat", training_file=make_training_file(tenant).public_id),
    )
    FineTuningJob.unscoped.filter(pk=job.pk).update(
        status="succeeded", fine_tuned_model=f"ft:tiny-chat:{tenant.slug}::{job.pk}"
    )
    job.refresh_from_db()
    return job


def test_a_job_without_a_validation_file_holds_out_part_of_the_training_file(
    acme, artifact_store, demo_model_path
):
    job = queued_job(acme)  # 20 examples
    assert job.holdout["count"] == 2
    assert job.n_train_examples == 18
    spec = scheduling.job_spec.build_spec(job)
    assert spec["holdout"] == job.holdout
    messages = [event.message for event in job.events.all()]
    assert (
        "Holding out 2 examples of the training file for the evaluation report; "
        "they are not trained on." in messages
    )
    # The same file is split the same way for every job on it.
    assert queued_job_on(acme, job.training_file).holdout == job.holdout


def queued_job_on(tenant, training_file) -> FineTuningJob:
    job = services.job_create(
        tenant=tenant, request=JobRequest(model="tiny-chat", training_file=training_file.public_id)
    )
    services.job_prepare(job_id=job.pk)
    job.refresh_from_db()
    return job


def test_a_validation_file_means_no_held_out_split(acme, artifact_store, demo_model_path):
    training, validation = make_training_file(acme), make_training_file(acme)
    job = services.job_create(
        tenant=acme,
        request=JobRequest(
            model="tiny-chat",
            training_file=training.public_id,
            validation_file=validation.public_id,
        ),
    )
    services.job_prepare(job_id=job.pk)
    job.refresh_from_db()
    assert job.holdout is None
    assert job.n_train_examples == 20


def test_a_succeeded_job_gets_a_report_that_waits_for_a_replica(
    acme,
    artifact_store,
    demo_model_path,
    fake_trainer,
    django_capture_on_commit_callbacks,
    settings,
):
    job = queued_job(acme)
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.jobs_dispatch()
    job.refresh_from_db()
    assert job.status == "succeeded"
    report = JobEvaluation.objects.for_tenant(acme).get(job=job)
    assert (report.status, report.model_id) == ("pending", job.fine_tuned_model)

    # A replica that does not serve the model yet (nothing listens there): still waiting.
    replica_register(model_id="tiny-chat", url="http://127.0.0.1:9", api_key="")
    assert evaluation.evaluation_run(job_id=job.pk) == "pending"
    assert evaluation.evaluations_resend() == 1  # the reaper sends it again

    # Past the wait, the report fails and says why.
    JobEvaluation.unscoped.filter(pk=report.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.EVALUATION_WAIT_SECONDS + 1)
    )
    assert evaluation.evaluation_run(job_id=job.pk) == "failed"
    report.refresh_from_db()
    assert report.error == (
        f"The model {job.fine_tuned_model} was not served by any replica of tiny-chat "
        f"within {settings.EVALUATION_WAIT_SECONDS} seconds."
    )
    assert job.events.filter(message__startswith="Evaluation report failed: The model").exists()
    assert evaluation.evaluations_resend() == 0


def test_the_report_in_the_platform_api(acme, alice_api, artifact_store):
    job = succeeded_job(acme)
    stored_evaluation(job)
    response = alice_api.get(f"/api/v1/fine_tuning/jobs/{job.public_id}/evaluation")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "fine_tuning.job.evaluation"
    assert (body["fine_tuning_job_id"], body["status"], body["model"]) == (
        job.public_id,
        "succeeded",
        job.fine_tuned_model,
    )
    assert body["report"]["verdict"]["improved"] is True
    assert body["report"]["models"]["fine_tuned"]["classification"]["macro_f1"] == pytest.approx(
        0.89899
    )


def test_a_job_without_a_report_answers_404_saying_why(acme, alice_api, artifact_store):
    job = services.job_create(
        tenant=acme,
        request=JobRequest(model="tiny-chat", training_file=make_training_file(acme).public_id),
    )
    response = alice_api.get(f"/api/v1/fine_tuning/jobs/{job.public_id}/evaluation")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": f"Job {job.public_id} has no evaluation report: reports are made for "
        "succeeded jobs, and this one is validating_files.",
        "type": "invalid_request_error",
        "param": "fine_tuning_job_id",
        "code": "evaluation_not_found",
    }


def test_the_report_is_in_the_openapi_schema(client, db):
    from tests.api.test_schema import fetch_schema

    schema = fetch_schema(client)
    operation = schema["paths"]["/api/v1/fine_tuning/jobs/{job_id}/evaluation"]["get"]
    assert operation["operationId"] == "fine_tuning_jobs_evaluation"
    reference = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert reference.endswith("/FineTuningJobEvaluation")
