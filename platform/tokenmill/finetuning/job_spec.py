"""What the platform works out before a job goes to a GPU: exact token counts,
concrete hyperparameters, and the self-contained spec (gpu_inference.protocol.JobSpec)
the worker runs."""

from django.conf import settings

from gpu_inference import hyperparameters as hp
from gpu_inference import protocol
from gpu_inference.formats import ExampleEncoder, read_examples
from gpu_inference.holdout import holdout_for
from tokenmill.catalog.models import BaseModel
from tokenmill.files.models import File
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning.models import FineTuningJob, JobCheckpoint


def dataset_statistics(job: FineTuningJob) -> dict:
    """Count with the job's own base model tokenizer, truncated to its context, exactly as training will."""
    return dataset_token_counts(
        job.base_model, job.training_file, hold_out=job.validation_file_id is None
    )


def dataset_token_counts(base_model: BaseModel, file: File, *, hold_out: bool = False) -> dict:
    """Examples and tokens per epoch of a validated file, for training `base_model` on it.

    With `hold_out` (a job without a validation file), the held-out split is left out of
    both counts and described under "holdout" (None when the file is too small for one).
    """
    context_length = base_model.context_length
    encoder = ExampleEncoder(settings.MODEL_ROOT / base_model.path, context_length=context_length)
    with get_artifact_store().local_copy(file.normalized_key) as path:
        tokens = [
            min(encoder.count_tokens(example), context_length) for example in read_examples(path)
        ]
    holdout = holdout_for(len(tokens), file.public_id) if hold_out else None
    held = holdout.indices(len(tokens)) if holdout else frozenset()
    return {
        "n_examples": len(tokens) - len(held),
        "trained_tokens_per_epoch": sum(n for index, n in enumerate(tokens) if index not in held),
        "holdout": holdout.as_dict() if holdout else None,
    }


def resolve_hyperparameters(job: FineTuningJob, stats: dict) -> dict:
    chosen = hp.resolve_hyperparameters(
        hp.from_request(job.hyperparameters),
        n_examples=stats["n_examples"],
        n_train_tokens=stats["trained_tokens_per_epoch"],
        n_params=job.base_model.parameter_count,
        method=job.training_type,
    )
    return {key: value for key, value in chosen.items() if value is not None}


def build_spec(job: FineTuningJob) -> protocol.JobSpec:
    hyper = job.resolved_hyperparameters
    return {
        "job_id": job.public_id,
        "attempt": job.attempt,
        "base_model": job.base_model.model_id,
        "base_model_path": job.base_model.path,
        "training_file": job.training_file.normalized_key,
        "validation_file": job.validation_file.normalized_key if job.validation_file else None,
        "holdout": job.holdout,
        "output_prefix": protocol.attempt_prefix(job.public_id, job.attempt),
        "method": job.training_type,
        "hyperparameters": {
            "n_epochs": hyper["n_epochs"],
            "batch_size": hyper["batch_size"],
            "learning_rate": hyper["learning_rate"],
            "lora_r": hyper.get("lora_r"),
            "lora_alpha": hyper.get("lora_alpha"),
        },
        "seed": job.seed,
        # The catalog's context, so training truncates exactly where the estimate did.
        "context_length": job.base_model.context_length,
        "resume": resume_point(job),
    }


def resume_point(job: FineTuningJob) -> protocol.Resume | None:
    """An attempt that follows an interrupted one (a lost or drained worker) continues
    from the last checkpoint recorded for it, carrying its earlier checkpoints along.
    The first attempt, and the first after an operator's retry, start from step 0."""
    if job.attempt - 1 <= job.attempt_base:
        return None
    # Each start deletes the checkpoints of the attempts before it (or carries them over),
    # so those left belong to the last attempt that started.
    earlier = JobCheckpoint.unscoped.filter(job=job, attempt__lt=job.attempt)
    last_started = earlier.order_by("-attempt").values_list("attempt", flat=True).first()
    if last_started is None:
        return None
    checkpoints = list(
        earlier.filter(attempt=last_started)
        .order_by("step_number")
        .values_list("artifact_key", "step_number")
    )
    return {"checkpoints": [key for key, _ in checkpoints], "step": checkpoints[-1][1]}
