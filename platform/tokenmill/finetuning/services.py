"""Writes on fine-tuning jobs: create, prepare, cancel, retry, fail, delete models
(dispatch and the reaper are in scheduling.py)."""

import random

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from gpu_inference.formats import InvalidExample
from tenants.errors import TenantError
from tenants.models import Organization
from tokenmill.catalog.models import BaseModel
from tokenmill.files.models import File
from tokenmill.files.services import storage_room_check
from tokenmill.files.storage import get_artifact_store
from tokenmill.files.storage_usage import stored_artifact_measure, stored_artifact_record
from tokenmill.finetuning import adapters, control, job_spec, signals
from tokenmill.finetuning.models import FineTunedModel, FineTuningJob, JobEvent
from tokenmill.finetuning.params import JobRequest

Status = FineTuningJob.Status


def event_add(
    job: FineTuningJob,
    message: str,
    *,
    level: str = "info",
    kind: str = "message",
    data=None,
    at=None,
):
    return JobEvent.objects.create(
        tenant_id=job.tenant_id,
        job=job,
        level=level,
        type=kind,
        message=message,
        data=data,
        created_at=at or timezone.now(),
    )


def fine_tunable_model(*, model_id: str) -> BaseModel:
    """The active base model a job may fine-tune, else the TenantError naming `model`."""
    base_model = BaseModel.objects.filter(model_id=model_id, status=BaseModel.Status.ACTIVE).first()
    if base_model is None:
        raise TenantError(
            f"The model {model_id!r} does not exist or cannot be fine-tuned.",
            code="model_not_found",
            param="model",
        )
    if not base_model.supports_fine_tuning:
        raise TenantError(
            f"The model {model_id!r} cannot be fine-tuned.",
            code="model_not_fine_tunable",
            param="model",
        )
    return base_model


def fine_tuning_file(*, tenant: Organization, file_id: str, param: str) -> File:
    """The tenant's file a job may train on, else the TenantError naming `param`."""
    file = File.objects.for_tenant(tenant).filter(public_id=file_id).first()
    if file is None:  # another tenant's file reads exactly like a missing one
        raise TenantError(f"No file with id {file_id!r}.", code="invalid_file", param=param)
    if file.purpose != "fine-tune":
        raise TenantError(
            f"File {file_id} has purpose {file.purpose!r}; fine-tuning needs purpose 'fine-tune'.",
            code="invalid_file_purpose",
            param=param,
        )
    if file.status == "error":
        raise TenantError(
            f"File {file_id} failed validation: {file.status_details}",
            code="invalid_file",
            param=param,
        )
    return file


def job_create(
    *, tenant: Organization, request: JobRequest, api_key_id: int | None = None
) -> FineTuningJob:
    base_model = fine_tunable_model(model_id=request.model)
    storage_room_check(tenant=tenant)
    training_file = fine_tuning_file(
        tenant=tenant, file_id=request.training_file, param="training_file"
    )
    validation_file = None
    if request.validation_file:
        validation_file = fine_tuning_file(
            tenant=tenant, file_id=request.validation_file, param="validation_file"
        )
    signals.job_create_requested.send(sender=FineTuningJob, tenant=tenant, request=request)
    with transaction.atomic():
        _queued_cap_check(tenant)
        job = FineTuningJob.objects.create(
            tenant=tenant,
            created_by_key_id=api_key_id,
            base_model=base_model,
            training_file=training_file,
            validation_file=validation_file,
            suffix=request.suffix,
            seed=request.seed if request.seed is not None else random.randint(0, 2**31 - 1),  # noqa: S311
            metadata=request.metadata,
            training_type=request.training_type,
            hyperparameters=request.hyperparameters,
        )
        event_add(job, f"Validating training file: {training_file.public_id}")
        # Listed from the start, so deleting the organization deletes what the job writes.
        stored_artifact_record(tenant=tenant, key=control.job_folder_key(job.public_id), size=0)
        # Files still being validated send the job on when they are done (the files
        # app's signal); trying now covers files that were validated already.
        # robust: the job is committed, so a broker blip must not fail the request;
        # the reaper's safety net (scheduling.jobs_prepare_stalled) prepares it later.
        transaction.on_commit(lambda: control.enqueue_prepare(job.pk), robust=True)
    return job


def _queued_cap_check(tenant: Organization) -> None:
    """At most MAX_QUEUED_JOBS waiting jobs per organization; the row lock makes
    concurrent creations of one organization count one after the other."""
    Organization.objects.select_for_update().filter(pk=tenant.pk).first()
    waiting = (
        FineTuningJob.objects.for_tenant(tenant)
        .filter(status__in=(Status.VALIDATING_FILES, Status.QUEUED), dispatched_at__isnull=True)
        .count()
    )
    if waiting >= settings.MAX_QUEUED_JOBS:
        raise TenantError(
            f"Your organization already has {waiting} fine-tuning jobs waiting to run, the most "
            f"allowed is {settings.MAX_QUEUED_JOBS}; wait for some to start or cancel some.",
            code="too_many_queued_jobs",
        )


def job_fail(*, job_id: int, code: str, message: str) -> None:
    """Fail a job that cannot go on (a task gave up on it); a finished job is left alone."""
    job = FineTuningJob.unscoped.filter(pk=job_id).first()
    if job is not None:
        mark_failed(job, code, message)


def mark_failed(job: FineTuningJob, code: str, message: str, *, param: str | None = None) -> None:
    now = timezone.now()
    updated = (
        FineTuningJob.unscoped.filter(pk=job.pk)
        .exclude(status__in=FineTuningJob.TERMINAL)
        .update(
            status=Status.FAILED,
            error={"code": code, "message": message, "param": param},
            finished_at=now,
            released_at=now,
        )
    )
    if updated:
        event_add(job, f"Fine-tuning job failed: {message}", level="error")


def job_prepare(*, job_id: int) -> str:
    """Turn a validating job into a queued one once its files are validated.

    Returns "waiting" while a file is still being validated (its validation's end
    sends the job here again), else the job's new status.
    """
    job = FineTuningJob.unscoped.select_related(
        "training_file", "validation_file", "base_model"
    ).get(pk=job_id)
    if job.status != Status.VALIDATING_FILES:
        return job.status
    files = [("training_file", job.training_file), ("validation_file", job.validation_file)]
    for param, file in files:
        if file is None:
            continue
        if file.status == "uploaded":
            return "waiting"
        if file.status == "error":
            mark_failed(
                job,
                "invalid_file",
                f"{file.public_id} failed validation: {file.status_details}",
                param=param,
            )
            return Status.FAILED
    try:
        stats = job_spec.dataset_statistics(job)
    except FileNotFoundError:
        if (settings.MODEL_ROOT / job.base_model.path).is_dir():
            mark_failed(
                job, "invalid_file", "The training file is missing from storage; upload it again."
            )
        else:
            mark_failed(
                job,
                "base_model_not_found",
                f"The base model {job.base_model.model_id} is not installed.",
            )
        return Status.FAILED
    except InvalidExample as error:
        mark_failed(
            job,
            "invalid_file",
            f"The training file cannot be encoded for {job.base_model.model_id}: {error}",
        )
        return Status.FAILED
    try:
        resolved = job_spec.resolve_hyperparameters(job, stats)
    except ValueError as error:
        mark_failed(job, "invalid_hyperparameters", str(error), param="hyperparameters")
        return Status.FAILED
    estimated = resolved["n_epochs"] * stats["trained_tokens_per_epoch"]
    for _, refusal in signals.job_budget_check.send(
        sender=FineTuningJob, job=job, estimated_trained_tokens=estimated
    ):
        if refusal:
            mark_failed(job, "insufficient_quota", refusal)
            return Status.FAILED
    updated = FineTuningJob.unscoped.filter(pk=job.pk, status=Status.VALIDATING_FILES).update(
        status=Status.QUEUED,
        resolved_hyperparameters=resolved,
        n_train_examples=stats["n_examples"],
        holdout=stats["holdout"],
        estimated_trained_tokens=estimated,
    )
    if not updated:  # cancelled meanwhile
        return FineTuningJob.unscoped.get(pk=job.pk).status
    event_add(
        job,
        f"Files validated: {stats['n_examples']} examples, about {estimated:,} tokens to train "
        f"over {resolved['n_epochs']} epochs.",
        data={"hyperparameters": resolved, "estimated_trained_tokens": estimated},
    )
    if stats["holdout"]:
        event_add(
            job,
            f"Holding out {stats['holdout']['count']} examples of the training file for the "
            "evaluation report; they are not trained on.",
            data={"holdout": stats["holdout"]},
        )
    event_add(job, "Fine-tuning job queued")
    transaction.on_commit(control.enqueue_dispatch, robust=True)
    return Status.QUEUED


def job_cancel(*, tenant: Organization, job: FineTuningJob) -> FineTuningJob:
    now = timezone.now()
    with transaction.atomic():
        job = FineTuningJob.objects.for_tenant(tenant).select_for_update().get(pk=job.pk)
        if job.is_terminal:
            raise TenantError(
                f"Job {job.public_id} has already {job.status} and cannot be cancelled.",
                code="job_not_cancellable",
                param="fine_tuning_job_id",
            )
        holds_slot = job.dispatched_at is not None
        job.status = Status.CANCELLED
        job.finished_at = now
        # A dispatched job keeps its slot until its worker has stopped.
        if not holds_slot:
            job.released_at = now
        job.save(update_fields=["status", "finished_at", "released_at"])
        event_add(job, "Fine-tuning job cancelled")
    if holds_slot:
        control.request_stop(job.public_id, job.attempt)
    else:
        transaction.on_commit(control.enqueue_dispatch, robust=True)
    return job


def job_requeue(job: FineTuningJob, *, handed_back: bool = False) -> None:
    """Back to the queue as the next attempt: the old attempt's reports are refused from
    now on, and its worker, if it still runs, stands down at its next step. The next
    attempt resumes from the old one's last checkpoint (job_spec.resume_point).
    `handed_back`: a draining worker gave the job back; that attempt is not counted."""
    attempt = job.attempt + 1
    FineTuningJob.unscoped.filter(pk=job.pk).update(
        status=Status.QUEUED,
        attempt=attempt,
        dispatched_at=None,
        worker="",
        last_heartbeat_at=None,
        estimated_finish=None,
        handbacks=F("handbacks") + (1 if handed_back else 0),
    )
    transaction.on_commit(lambda: control.mark_current_attempt(job.public_id, attempt))


def attempts_made(job: FineTuningJob) -> int:
    """Attempts since the operator's last retry that count against JOB_MAX_ATTEMPTS."""
    return job.attempt - job.attempt_base - job.handbacks


def job_retry(*, job: FineTuningJob) -> FineTuningJob:
    """An operator's retry of a failed or cancelled job: it goes through the queue again,
    as a new attempt (the old one's cancel marker and reports cannot reach it)."""
    with transaction.atomic():
        job = FineTuningJob.unscoped.select_for_update().get(pk=job.pk)
        if job.status not in (Status.FAILED, Status.CANCELLED) or job.released_at is None:
            raise TenantError(
                f"Only failed or cancelled jobs that have stopped can be retried; {job.public_id} is {job.status}.",
                code="job_not_retryable",
            )
        job.status = Status.QUEUED if job.resolved_hyperparameters else Status.VALIDATING_FILES
        job.error = None
        job.finished_at = job.dispatched_at = job.released_at = job.last_heartbeat_at = None
        job.attempt_base = job.attempt
        job.handbacks = 0
        job.attempt += 1
        job.save()
        event_add(job, "Retried by an operator")
        if job.status == Status.QUEUED:
            transaction.on_commit(control.enqueue_dispatch, robust=True)
        else:
            transaction.on_commit(lambda: control.enqueue_prepare(job.pk), robust=True)
    return job


def fine_tuned_model_delete(*, tenant: Organization, model: FineTunedModel) -> None:
    """The one place a fine-tuned model is deleted (with its artifact)."""
    artifact_key = model.artifact_key
    job_folder = control.job_folder_key(model.job.public_id)
    # A model made from a checkpoint shares the checkpoint's weights: they stay with it.
    owns_weights = model.checkpoint_id is None
    FineTunedModel.objects.for_tenant(tenant).filter(pk=model.pk).delete()
    adapters.adapters_publish_on_commit(base_model=model.base_model)

    def delete_bytes() -> None:
        if owns_weights:
            get_artifact_store().delete(artifact_key)
        stored_artifact_measure(tenant=tenant, key=job_folder)  # the quota counts what is left

    transaction.on_commit(delete_bytes)
