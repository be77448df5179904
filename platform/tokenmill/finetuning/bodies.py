"""OpenAI's JSON shapes for jobs, events, checkpoints and fine-tuned models."""

from tokenmill.finetuning.models import (
    FineTunedModel,
    FineTuningJob,
    JobCheckpoint,
    JobEvaluation,
    JobEvent,
)


def _ts(value) -> int | None:
    return int(value.timestamp()) if value else None


def _hyperparameters(job: FineTuningJob) -> dict:
    requested, resolved = job.hyperparameters, job.resolved_hyperparameters or {}
    body = {
        "n_epochs": resolved.get("n_epochs", requested.get("n_epochs", "auto")),
        "batch_size": resolved.get("batch_size", requested.get("batch_size", "auto")),
        "learning_rate_multiplier": resolved.get(
            "learning_rate_multiplier", requested.get("learning_rate_multiplier", "auto")
        ),
    }
    if job.training_type == FineTuningJob.TrainingType.LORA:
        body["lora_rank"] = resolved.get("lora_r", requested.get("lora_rank", "auto"))
        body["lora_alpha"] = resolved.get("lora_alpha", requested.get("lora_alpha", "auto"))
    return body


def job_body(job: FineTuningJob) -> dict:
    hyperparameters = _hyperparameters(job)
    return {
        "id": job.public_id,
        "object": "fine_tuning.job",
        "created_at": _ts(job.created_at),
        "error": job.error,
        "fine_tuned_model": job.fine_tuned_model,
        "finished_at": _ts(job.finished_at),
        "hyperparameters": hyperparameters,
        "model": job.base_model.model_id,
        "organization_id": job.tenant.public_id,
        "result_files": [],
        "seed": job.seed,
        "status": job.status,
        "trained_tokens": job.trained_tokens,
        "training_file": job.training_file.public_id,
        "validation_file": job.validation_file.public_id if job.validation_file else None,
        "estimated_finish": _ts(job.estimated_finish),
        "integrations": [],
        "metadata": job.metadata,
        "user_provided_suffix": job.suffix or None,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        # Extensions: how it trains, and what it will cost in tokens before it runs.
        "training_type": job.training_type,
        "estimated_trained_tokens": job.estimated_trained_tokens,
    }


def event_body(event: JobEvent) -> dict:
    return {
        "id": event.public_id,
        "object": "fine_tuning.job.event",
        "created_at": _ts(event.created_at),
        "level": event.level,
        "message": event.message,
        "type": event.type,
        "data": event.data,
    }


def checkpoint_body(checkpoint: JobCheckpoint) -> dict:
    return {
        "id": checkpoint.public_id,
        "object": "fine_tuning.job.checkpoint",
        "created_at": _ts(checkpoint.created_at),
        "fine_tuned_model_checkpoint": checkpoint.fine_tuned_model_checkpoint,
        "fine_tuning_job_id": checkpoint.job.public_id,
        "metrics": checkpoint.metrics,
        "step_number": checkpoint.step_number,
    }


def fine_tuned_model_body(model: FineTunedModel) -> dict:
    return {
        "id": model.model_id,
        "object": "model",
        "created": _ts(model.created_at),
        "owned_by": model.tenant.public_id,
    }


def evaluation_body(evaluation: JobEvaluation) -> dict:
    """The platform API's shape of an evaluation report (see evaluation.build_report)."""
    job = evaluation.job
    return {
        "object": "fine_tuning.job.evaluation",
        "fine_tuning_job_id": job.public_id,
        "status": evaluation.status,
        "model": evaluation.model_id,
        "holdout": job.holdout,
        "created_at": _ts(evaluation.created_at),
        "finished_at": _ts(evaluation.finished_at),
        "error": evaluation.error or None,
        "report": evaluation.report,
    }
