"""Recording what GPU workers report (runs on the control queue).

Reports of an attempt that is no longer current (the job was requeued, or a
duplicate delivery) are ignored, so a zombie worker can never overwrite a job.
"""

from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from tokenmill.finetuning import adapters, control
from tokenmill.finetuning.models import FineTunedModel, FineTuningJob, JobCheckpoint
from tokenmill.finetuning.services import event_add, mark_failed

Status = FineTuningJob.Status


def fine_tuned_model_id(job: FineTuningJob) -> str:
    fragment = job.public_id.removeprefix("ftjob-")[:8]
    return f"ft:{job.base_model.model_id}:{job.tenant.slug}:{job.suffix}:{fragment}"


# The trainer speaks Python's logging words; OpenAI's events say info, warn, error.
_LEVELS = {"info": "info", "warn": "warn", "warning": "warn", "error": "error"}


def _at(payload: dict) -> datetime:
    return datetime.fromtimestamp(payload["at"], tz=UTC) if "at" in payload else timezone.now()


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


def record(*, job_id: str, attempt: int, kind: str, payload: dict) -> bool:
    """Apply one report. Returns False when it was ignored as stale."""
    job = (
        FineTuningJob.objects.select_related("tenant", "base_model")
        .filter(public_id=job_id)
        .first()
    )
    if job is None or job.attempt != attempt:
        return False
    # Reports of the current attempt still count after its outcome was recorded: the
    # control queue runs them concurrently, so the last checkpoint may land after it.
    at = _at(payload)
    current = FineTuningJob.objects.filter(pk=job.pk, attempt=attempt, released_at__isnull=True)
    if kind == "outcome":
        return _record_outcome(job, attempt, payload, at)
    current.update(last_heartbeat_at=timezone.now())
    if kind == "started":
        started = current.filter(status=Status.QUEUED).update(
            status=Status.RUNNING, started_at=at, worker=payload.get("worker", "")
        )
        if started:
            event_add(job, "Fine-tuning job started", at=at)
    elif kind == "event":
        event_add(
            job,
            payload["message"],
            level=_LEVELS.get(payload.get("level"), "info"),
            data=payload.get("data"),
            at=at,
        )
    elif kind == "metrics":
        data = payload["data"]
        event_add(job, _metrics_message(data), kind="metrics", data=data, at=at)
        if data.get("eta_seconds") is not None:
            current.update(estimated_finish=timezone.now() + timedelta(seconds=data["eta_seconds"]))
    elif kind == "checkpoint":
        step = int(payload["step"])
        JobCheckpoint.objects.get_or_create(
            job=job,
            step_number=step,
            defaults={
                "tenant_id": job.tenant_id,
                "epoch": int(payload.get("epoch", 0)),
                "metrics": payload.get("metrics") or {},
                "fine_tuned_model_checkpoint": f"{fine_tuned_model_id(job)}:ckpt-step-{step}",
                "artifact_key": payload["path"],
                "created_at": at,
            },
        )
    return True


def _record_outcome(job: FineTuningJob, attempt: int, payload: dict, at: datetime) -> bool:
    now = timezone.now()
    status = payload["status"]
    with transaction.atomic():
        job = (
            FineTuningJob.objects.select_for_update()
            .select_related("tenant", "base_model")
            .get(pk=job.pk)
        )
        if job.attempt != attempt or job.released_at is not None:
            return False
        if job.status == Status.CANCELLED or status == "cancelled":
            # Cancelled by the user (even if training finished meanwhile): the worker has stopped.
            FineTuningJob.objects.filter(pk=job.pk).update(status=Status.CANCELLED, released_at=now)
        elif status == "succeeded":
            model_id = fine_tuned_model_id(job)
            FineTuningJob.objects.filter(pk=job.pk).update(
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
        else:
            mark_failed(
                job,
                payload.get("code", "internal_error"),
                payload.get("message", "Training failed."),
            )
            FineTuningJob.objects.filter(pk=job.pk).update(finished_at=at)
        transaction.on_commit(control.enqueue_dispatch)
    return True
