"""The reaper acts on what workers said, never against a worker that is still running."""

from datetime import timedelta

from django.utils import timezone

from tests.finetuning.conftest import queued_job, report
from tokenmill.finetuning import scheduling
from tokenmill.finetuning.models import FineTuningJob


def test_a_job_heard_from_is_not_redispatched_while_its_started_report_is_late(
    acme, artifact_store, demo_model_path, sent, settings, django_capture_on_commit_callbacks
):
    job = queued_job(acme)
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.jobs_dispatch()
    job.refresh_from_db()
    settings.JOB_DISPATCH_TIMEOUT = 600
    FineTuningJob.unscoped.filter(pk=job.pk).update(
        dispatched_at=timezone.now() - timedelta(seconds=601)
    )
    assert report(job, "heartbeat", seq=2)  # seq 1, STARTED, is still on its way
    counts = scheduling.requeue_or_fail_lost_jobs()
    assert counts["redispatched"] == 0
    job.refresh_from_db()
    assert (job.status, job.attempt) == ("queued", 1)

    # Once its worker falls silent too, the message counts as lost and is sent again.
    later = timezone.now() + timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT + 1)
    assert scheduling.requeue_or_fail_lost_jobs(now=later)["redispatched"] == 1
    job.refresh_from_db()
    assert job.attempt == 2
