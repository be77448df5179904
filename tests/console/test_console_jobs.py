"""The console's fine-tuning pages: filters, cancel and retry actions, events inline."""

import pytest

from tests.finetuning.conftest import make_training_file
from tokenmill.finetuning import services
from tokenmill.finetuning.models import FineTuningJob
from tokenmill.finetuning.params import JobRequest

JOBS = "/console/finetuning/finetuningjob/"


@pytest.fixture
def jobs(acme, globex, artifact_store, demo_model_path):
    def job(tenant):
        file = make_training_file(tenant)
        return services.job_create(
            tenant=tenant, request=JobRequest(model="tiny-chat", training_file=file.public_id)
        )

    return job(acme), job(globex)


def test_jobs_filter_by_status_tenant_and_model(console, jobs):
    acme_job, globex_job = jobs
    FineTuningJob.unscoped.filter(pk=globex_job.pk).update(status="failed")
    by_status = console.get(JOBS, {"status__exact": "failed"}).content.decode()
    assert globex_job.public_id in by_status and acme_job.public_id not in by_status
    by_tenant = console.get(JOBS, {"tenant__id__exact": acme_job.tenant_id}).content.decode()
    assert acme_job.public_id in by_tenant and globex_job.public_id not in by_tenant
    by_model = console.get(JOBS, {"base_model__id__exact": acme_job.base_model_id}).content.decode()
    assert acme_job.public_id in by_model and globex_job.public_id in by_model
    search = console.get(JOBS, {"q": "globex"}).content.decode()
    assert globex_job.public_id in search and acme_job.public_id not in search


def test_the_job_page_shows_its_events(console, jobs):
    acme_job, _ = jobs
    page = console.get(f"{JOBS}{acme_job.pk}/change/").content.decode()
    assert f"Validating training file: {acme_job.training_file.public_id}" in page


def test_cancel_and_retry_actions(console, jobs, django_capture_on_commit_callbacks):
    acme_job, _ = jobs
    console.post(JOBS, {"action": "cancel", "_selected_action": [acme_job.pk]})
    acme_job.refresh_from_db()
    assert acme_job.status == "cancelled"

    with django_capture_on_commit_callbacks(execute=False):
        response = console.post(
            JOBS, {"action": "retry", "_selected_action": [acme_job.pk]}, follow=True
        )
    assert "Retried 1 job(s)." in response.content.decode()
    acme_job.refresh_from_db()
    assert acme_job.status == "validating_files" and acme_job.error is None
    assert acme_job.events.filter(message="Retried by an operator").exists()

    response = console.post(
        JOBS, {"action": "retry", "_selected_action": [acme_job.pk]}, follow=True
    )
    assert (
        f"Only failed or cancelled jobs that have stopped can be retried; {acme_job.public_id} is validating_files."
        in response.content.decode()
    )


def test_operators_see_evaluation_reports_by_status(console, jobs):
    from tokenmill.finetuning.models import JobEvaluation

    acme_job, globex_job = jobs
    JobEvaluation.objects.create(
        tenant=acme_job.tenant, job=acme_job, model_id="ft:tiny-chat:acme::a", status="failed"
    )
    JobEvaluation.objects.create(
        tenant=globex_job.tenant, job=globex_job, model_id="ft:tiny-chat:globex::b"
    )
    failed = console.get("/console/finetuning/jobevaluation/", {"status__exact": "failed"})
    page = failed.content.decode()
    assert "ft:tiny-chat:acme::a" in page and "ft:tiny-chat:globex::b" not in page
