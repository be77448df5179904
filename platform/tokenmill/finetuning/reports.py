"""Recording what GPU workers report (runs on the control queue).

Fenced: only reports of the attempt dispatched last count, so a zombie worker or a
stale redelivery can never touch a requeued job. Idempotent: every report is named
by (job, attempt, seq), and the rows it creates carry that name under a unique
constraint, so a redelivered report creates nothing twice.
"""

from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from gpu_inference import protocol
from tokenmill.files.storage_usage import stored_artifact_measure
from tokenmill.finetuning import adapters, control, evaluation
from tokenmill.finetuning.models import FineTunedModel, FineTuningJob, JobCheckpoint, JobEvent
from tokenmill.finetuning.services import event_add, job_requeue, mark_failed
from tokenmill.finetuning.signals import job_succeeded

Status = FineTuningJob.Status
Kind = protocol.ReportKind


def fine_tuned_model_id(job: FineTuningJob) -> str:
    fragment = job.public_id.removeprefix("ftjob-")[:8]
    return f"ft:{job.base_model.model_id}:{job.tenant.slug}:{job.suffix}:{fragment}"


# The trainer speaks Python's logging words; OpenAI's events say info, warn, error.
_LEVELS = {"info": "info", "warn": "warn", "warning": "warn", "error": "error"}


def _at(report: protocol.Report) -> datetime:
    at = report.get("at")
    return datetime.fromtimestamp(at, tz=UTC) if at is not None else timezone.now()


def _metrics_message(data: dict) -> str:
    """'Step 3/15: training loss=2.1787, token accuracy=0.612, 4759 tokens/s, about 12s left'
    for a step; 'Epoch 1 (step 5): mean training loss=..., validation loss=...' for an epoch."""
    if data.get("kind") == "epoch":
        head = f"Epoch {data.get('epoch')} (step {data.get('step')})"
        fields = [
            ("train_loss_mean", "mean training loss={:.4f}"),
            ("valid_loss", "validation loss={:.4f}"),
            ("valid_token_accuracy", "validation token accuracy={:.3f}"),
        ]
    else:
        head = f"Step {data.get('step')}/{data.get('total_steps')}"
        fields = [
            ("train_loss", "training loss={:.4f}"),
            ("train_token_accuracy", "token accuracy={:.3f}"),
            ("tokens_per_second", "{:.0f} tokens/s"),
            ("eta_seconds", "about {:.0f}s left"),
        ]
    parts = [template.format(data[key]) for key, template in fields if data.get(key) is not None]
    return f"{head}: {', '.join(parts)}" if parts else head


def _current(job_id: str, attempt: int):
    """The job, if `attempt` is the one it dispatched last; else None (a stale report)."""
    return (
        FineTuningJob.unscoped.select_related("tenant", "base_model")
        .filter(public_id=job_id, attempt=attempt, dispatched_at__isnull=False)
        .first()
    )


def record(report: protocol.Report) -> bool:
    """Apply one report. Returns False when it was ignored as stale."""
    attempt = int(report["attempt"])
    job = _current(report["job_id"], attempt)
    if job is None:
        return False
    kind, payload, at = report["kind"], report.get("payload") or {}, _at(report)
    if kind == Kind.OUTCOME:
        recorded = _record_outcome(job, attempt, payload, at)
        _measure_job_folder(job)
        return recorded
    # Reports of the current attempt still count after its outcome was recorded: the
    # control queue runs them concurrently, so the last checkpoint may land after it.
    current = FineTuningJob.unscoped.filter(pk=job.pk, attempt=attempt, released_at__isnull=True)
    current.update(last_heartbeat_at=timezone.now())
    if kind == Kind.STARTED:
        _record_started(job, attempt, payload, at)
    elif kind == Kind.EVENT:
        _event_once(
            job,
            report,
            payload["message"],
            level=_LEVELS.get(payload.get("level"), "info"),
            data=payload.get("data"),
        )
    elif kind == Kind.METRICS:
        data = payload["data"]
        _event_once(job, report, _metrics_message(data), kind=JobEvent.Type.METRICS, data=data)
        if data.get("eta_seconds") is not None:
            current.update(estimated_finish=timezone.now() + timedelta(seconds=data["eta_seconds"]))
    elif kind == Kind.CHECKPOINT:
        step = int(payload["step"])
        JobCheckpoint.unscoped.bulk_create(
            [
                JobCheckpoint(
                    tenant_id=job.tenant_id,
                    job=job,
                    attempt=attempt,
                    step_number=step,
                    epoch=int(payload.get("epoch", 0)),
                    metrics=payload.get("metrics") or {},
                    fine_tuned_model_checkpoint=f"{fine_tuned_model_id(job)}:ckpt-step-{step}",
                    artifact_key=payload["path"],
                    created_at=at,
                )
            ],
            ignore_conflicts=True,  # one checkpoint per step of an attempt: a redelivery adds none
        )
        _measure_job_folder(job)
    return True


def _measure_job_folder(job: FineTuningJob) -> None:
    """Checkpoints and models count against the storage quota as they land (and go)."""
    stored_artifact_measure(tenant=job.tenant, key=control.job_folder_key(job.public_id))


def _event_once(job: FineTuningJob, report: protocol.Report, message: str, **fields) -> None:
    JobEvent.unscoped.bulk_create(
        [
            JobEvent(
                tenant_id=job.tenant_id,
                job=job,
                attempt=report["attempt"],
                report_seq=report["seq"],
                message=message,
                level=fields.get("level", JobEvent.Level.INFO),
                type=fields.get("kind", JobEvent.Type.MESSAGE),
                data=fields.get("data"),
                created_at=_at(report),
            )
        ],
        ignore_conflicts=True,  # the unique (job, attempt, report_seq) drops a redelivery
    )


def _record_started(job: FineTuningJob, attempt: int, payload: dict, at: datetime) -> None:
    with transaction.atomic():
        started = FineTuningJob.unscoped.filter(
            pk=job.pk, attempt=attempt, status=Status.QUEUED, released_at__isnull=True
        ).update(status=Status.RUNNING, started_at=at, worker=payload.get("worker", ""))
        if not started:
            return
        event_add(job, "Fine-tuning job started", at=at)
        resumed_from = _carry_checkpoints(job, attempt, payload.get("carried") or {})
        # What earlier attempts left and this one does not continue is dead: their other
        # checkpoints, the metrics past the resumed step, and their folders.
        JobCheckpoint.unscoped.filter(job=job, attempt__lt=attempt).delete()
        stale_metrics = JobEvent.unscoped.filter(
            job=job, type=JobEvent.Type.METRICS, attempt__lt=attempt
        )
        if resumed_from is not None:
            stale_metrics = stale_metrics.exclude(data__step__lte=resumed_from)
        stale_metrics.delete()

        def delete_superseded() -> None:
            control.delete_superseded_attempts(job.public_id, attempt)
            _measure_job_folder(job)

        transaction.on_commit(delete_superseded)


def _carry_checkpoints(job: FineTuningJob, attempt: int, carried: dict[str, str]) -> int | None:
    """The checkpoints an attempt that resumes took over from the interrupted one (the
    worker copied their folders): they become this attempt's, and so do the models made
    from them. Returns the step it resumes from, or None when it starts afresh."""
    rows = list(
        JobCheckpoint.unscoped.filter(job=job, attempt__lt=attempt, artifact_key__in=carried)
    )
    for row in rows:
        new_key = carried[row.artifact_key]
        JobCheckpoint.unscoped.filter(pk=row.pk).update(attempt=attempt, artifact_key=new_key)
        if FineTunedModel.unscoped.filter(checkpoint=row).update(artifact_key=new_key):
            adapters.adapters_publish_on_commit(base_model=job.base_model)
    return max((row.step_number for row in rows), default=None)


def _handed_back(job: FineTuningJob, payload: dict, at: datetime) -> None:
    """A draining worker gave the job back: queue it again now, to resume at once."""
    job_requeue(job, handed_back=True)
    step = payload.get("step", 0)
    where = f"it resumes from its checkpoint at step {step}" if step else "it starts at step 0"
    event_add(
        job,
        f"The worker running the job was stopped (a drain); the job is queued again and {where}.",
        at=at,
    )


def _record_outcome(job: FineTuningJob, attempt: int, payload: dict, at: datetime) -> bool:
    now = timezone.now()
    status = payload["status"]
    with transaction.atomic():
        job = (
            FineTuningJob.unscoped.select_for_update()
            .select_related("tenant", "base_model")
            .get(pk=job.pk)
        )
        if job.attempt != attempt or job.dispatched_at is None or job.released_at is not None:
            return False  # superseded meanwhile, or this outcome was recorded already
        if job.status == Status.CANCELLED or status == protocol.Outcome.CANCELLED:
            # Cancelled by the user (even if training finished meanwhile): the worker has stopped.
            FineTuningJob.unscoped.filter(pk=job.pk).update(
                status=Status.CANCELLED, released_at=now
            )
        elif status == protocol.Outcome.SUCCEEDED:
            mark_succeeded(job, payload, at=at, now=now)
        elif status == protocol.Outcome.HANDED_BACK:
            _handed_back(job, payload, at)
        else:
            mark_failed(
                job,
                payload.get("code", "internal_error"),
                payload.get("message", "Training failed."),
            )
            FineTuningJob.unscoped.filter(pk=job.pk).update(finished_at=at)
        transaction.on_commit(control.enqueue_dispatch, robust=True)
    return True


def mark_succeeded(job: FineTuningJob, payload: dict, *, at: datetime, now: datetime) -> None:
    """The one place a job succeeds: its model is registered."""
    model_id = fine_tuned_model_id(job)
    FineTuningJob.unscoped.filter(pk=job.pk).update(
        status=Status.SUCCEEDED,
        trained_tokens=payload["trained_tokens"],
        fine_tuned_model=model_id,
        finished_at=at,
        released_at=now,
        estimated_finish=None,
    )
    FineTunedModel.objects.create(
        model_id=model_id,
        tenant_id=job.tenant_id,
        job=job,
        base_model=job.base_model,
        training_type=job.training_type,
        artifact_key=payload["output"],
    )
    adapters.adapters_publish_on_commit(base_model=job.base_model)
    event_add(job, f"New fine-tuned model created: {model_id}", at=at)
    event_add(job, "The job has successfully completed", at=at)
    job.fine_tuned_model = model_id
    evaluation.evaluation_create(job)
    transaction.on_commit(lambda: job_succeeded.send(sender=FineTuningJob, job_id=job.pk))
