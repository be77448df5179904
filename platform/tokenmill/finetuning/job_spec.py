"""What the platform works out before a job goes to a GPU: exact token counts,
concrete hyperparameters, and the self-contained spec (gpu_inference.protocol.JobSpec)
the worker runs."""

from django.conf import settings

from gpu_inference import hyperparameters as hp
from gpu_inference import protocol
from gpu_inference.formats import ExampleEncoder, read_examples
from tokenmill.catalog.models import BaseModel
from tokenmill.files.models import File
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning.models import FineTuningJob


def dataset_statistics(job: FineTuningJob) -> dict:
    """Count with the job's own base model tokenizer, truncated to its context, exactly as training will."""
    return dataset_token_counts(job.base_model, job.training_file)


def dataset_token_counts(base_model: BaseModel, file: File) -> dict:
    """Examples and tokens per epoch of a validated file, for training `base_model` on it."""
    context_length = base_model.context_length
    encoder = ExampleEncoder(settings.MODEL_ROOT / base_model.path, context_length=context_length)
    n_examples, per_epoch = 0, 0
    with get_artifact_store().local_copy(file.normalized_key) as path:
        for example in read_examples(path):
            n_examples += 1
            per_epoch += min(encoder.count_tokens(example), context_length)
    return {"n_examples": n_examples, "trained_tokens_per_epoch": per_epoch}


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
    }
