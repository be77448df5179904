"""Fine-tuning tasks: thin, they load ids and call services.

Transient errors (the database or the broker unreachable for a moment, a shared
folder that blinked) are retried with backoff; anything else is a bug or a bad job
and retrying would not fix it.
"""

import logging
from pathlib import Path

from django.conf import settings
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from gpu_inference import protocol, telemetry, worker
from tokenmill.files import services as file_services
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning import control, evaluation, reports, scheduling, services
from tokenmill.finetuning.models import FineTuningJob
from workers.celery import app
from workers.deliveries import BoundedDeliveriesTask

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError, BrokerError, ConnectionError, TimeoutError)
# Preparation also reads the dataset and the tokenizer from shared storage.
PREPARE_TRANSIENT_ERRORS = (*TRANSIENT_ERRORS, OSError)


class PrepareJobTask(BoundedDeliveriesTask):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        # Out of retries, or not retryable: the job says so instead of validating forever.
        job_pk = kwargs.get("job_pk", args[0] if args else None)
        logger.error("preparing fine-tuning job %s failed for good: %r", job_pk, exc)
        if job_pk is not None:
            services.job_fail(
                job_id=job_pk,
                code="preparation_failed",
                message="The job could not be prepared for training; ask support to retry it.",
            )


@app.task(
    name=protocol.TASK_PREPARE,
    base=PrepareJobTask,
    autoretry_for=PREPARE_TRANSIENT_ERRORS,
    max_retries=6,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
)
def prepare_job(job_pk: int) -> str:
    """Count tokens, pick hyperparameters, queue. Sent when the job's files are validated."""
    public_id = FineTuningJob.unscoped.filter(pk=job_pk).values_list("public_id", flat=True)
    with telemetry.log_context(job_id=public_id.first()):
        return services.job_prepare(job_id=job_pk)


@app.task(name=protocol.TASK_DISPATCH, autoretry_for=TRANSIENT_ERRORS, max_retries=5)
def dispatch_jobs() -> list[int]:
    return scheduling.jobs_dispatch()


# A worker process that dies mid-job must not get the same attempt back from the
# broker (it could crash forever on it): the reaper requeues it as a new attempt.
# Late acknowledgement means Redis may deliver a long attempt again after its
# visibility timeout: the worker's claim marker makes that delivery stand down.
@app.task(name=protocol.TASK_TRAIN, acks_late=True, reject_on_worker_lost=False)
def train(spec: protocol.JobSpec) -> str:
    """The train task as the platform's app knows it, for tasks run in-process (the test
    suite's eager mode). GPU nodes run gpu_inference.gpu_worker's task of the same name
    and options, without Django; this one too needs only the spec and the store."""
    return worker.run_job(
        spec,
        store=get_artifact_store(),
        model_root=Path(settings.MODEL_ROOT),
        trainer=settings.TRAINER,
        work_root=Path(settings.ARTIFACT_CACHE_DIR) / "training",
        send=control.send_report,
        heartbeat_seconds=settings.JOB_HEARTBEAT_SECONDS,
        outcome_retry_seconds=settings.JOB_OUTCOME_RETRY_SECONDS,
    )


@app.task(
    name=protocol.TASK_REPORT,
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=10,
    retry_backoff=1,
    retry_backoff_max=300,
    retry_jitter=True,
)
def record_report(report: protocol.Report) -> bool:
    """Idempotent: a redelivered or retried report changes nothing the first one did."""
    return reports.record(report)


@app.task(name=protocol.TASK_REAP, autoretry_for=TRANSIENT_ERRORS, max_retries=3)
def reap_jobs() -> dict:
    """Periodic: requeue or fail jobs whose worker went silent, prepare jobs whose
    trigger was lost, then fill free GPU slots."""
    counts = scheduling.requeue_or_fail_lost_jobs()
    counts.update(scheduling.jobs_prepare_stalled())
    counts["validation_resent"] = file_services.files_validation_resend()
    counts["evaluations_resent"] = evaluation.evaluations_resend()
    counts["dispatched"] = len(scheduling.jobs_dispatch())
    return counts


@app.task(name=evaluation.TASK_EVALUATE, autoretry_for=TRANSIENT_ERRORS, max_retries=3)
def evaluate_job(job_pk: int) -> str:
    """Default queue: the job's evaluation report through the serving replicas; a report
    whose model is not served yet stays pending, and the reaper sends it again."""
    return evaluation.evaluation_run(job_id=job_pk)
