"""Fine-tuning tasks: thin, they load ids and call services."""

from celery.exceptions import MaxRetriesExceededError

from tokenmill.finetuning import reports, runner, services
from workers.celery import app


@app.task(name="finetuning.prepare", bind=True, max_retries=1800, default_retry_delay=1)
def prepare_job(self, job_pk: int) -> str:
    """Wait for the job's files to be validated, count tokens, pick hyperparameters, queue."""
    try:
        status = services.job_prepare(job_id=job_pk)
    except Exception:
        services.job_fail(
            job_id=job_pk, code="internal_error", message="The job could not be prepared."
        )
        raise
    if status == "waiting":
        try:
            raise self.retry()
        except MaxRetriesExceededError:
            services.job_fail(
                job_id=job_pk,
                code="file_validation_timeout",
                message="The training files were still being validated after 30 minutes.",
            )
            return "failed"
    return status


@app.task(name="finetuning.dispatch")
def dispatch_jobs() -> list[int]:
    return services.jobs_dispatch()


# A worker process that dies mid-job must not get the same attempt back from the
# broker (it could crash forever on it): the reaper requeues it as a new attempt.
@app.task(name="finetuning.train", acks_late=True, reject_on_worker_lost=False)
def train(spec: dict) -> str:
    """Runs on the gpu queue. No database: the spec and the artifact store are all it needs."""
    return runner.run_job(spec)


@app.task(
    name="finetuning.report", autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5
)
def record_report(job_id: str, attempt: int, kind: str, payload: dict) -> bool:
    return reports.record(job_id=job_id, attempt=attempt, kind=kind, payload=payload)


@app.task(name="finetuning.reap")
def reap_jobs() -> dict:
    """Periodic: requeue or fail jobs whose worker went silent, then fill free GPU slots."""
    counts = services.requeue_or_fail_lost_jobs()
    counts["dispatched"] = len(services.jobs_dispatch())
    return counts
