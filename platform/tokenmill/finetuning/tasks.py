"""Fine-tuning tasks: thin, they load ids and call services."""

from tokenmill.finetuning import reports, runner, services
from workers.celery import app


@app.task(name="finetuning.prepare", bind=True, max_retries=600, default_retry_delay=1)
def prepare_job(self, job_pk: int) -> str:
    """Wait for the job's files to be validated, count tokens, pick hyperparameters, queue."""
    status = services.job_prepare(job_id=job_pk)
    if status == "waiting":
        raise self.retry()
    return status


@app.task(name="finetuning.dispatch")
def dispatch_jobs() -> list[int]:
    return services.jobs_dispatch()


@app.task(name="finetuning.train", acks_late=True)
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
