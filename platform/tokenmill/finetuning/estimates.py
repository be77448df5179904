"""What a job would train, worked out before it is created (the dashboard shows it before launch).

The numbers are the ones `services.job_prepare` records once the job exists: the
same token counts (the base model's tokenizer, each example truncated to its
context) and the same resolution of "auto" hyperparameters. Counting a file is
cached (a file's content never changes); a file too large to count within a web
request is estimated from its validation statistics instead, and says so.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.core.cache import cache

from gpu_inference import hyperparameters as hp
from gpu_inference.hyperparameters import InvalidHyperparameter
from tenants.errors import TenantError
from tenants.models import Organization
from tokenmill.catalog.models import BaseModel
from tokenmill.files.models import File
from tokenmill.files.tokenizer import TokenizerUnavailable, model_folder
from tokenmill.finetuning import job_spec, services
from tokenmill.finetuning.models import FineTuningJob
from tokenmill.finetuning.params import AUTO, JobRequest

# About two seconds of counting on one core; larger files use their validation statistics.
EXACT_COUNT_MAX_BYTES = 8 * 1024 * 1024
COUNTS_CACHE_SECONDS = 24 * 3600

__all__ = ["EXACT_COUNT_MAX_BYTES", "TokenizerUnavailable", "TrainingEstimate", "job_estimate"]


@dataclass(frozen=True)
class TrainingEstimate:
    base_model: BaseModel
    training_file: File
    n_examples: int
    tokens_per_epoch: int
    hyperparameters: dict  # resolved: what the job will run with
    epochs_auto: bool
    exact: bool  # False when taken from the validation statistics of a large file
    held_out: int = 0  # examples kept out of training for the evaluation report

    @property
    def n_epochs(self) -> int:
        return self.hyperparameters["n_epochs"]

    @property
    def trained_tokens(self) -> int:
        return self.n_epochs * self.tokens_per_epoch

    @property
    def cost(self) -> Decimal:
        """US dollars at the model's training price, unrounded."""
        return self.base_model.training_price_per_million * self.trained_tokens / 1_000_000


def job_estimate(*, tenant: Organization, request: JobRequest) -> TrainingEstimate:
    """Raises TenantError (naming the parameter) for what job_create or job_prepare would refuse,
    and TokenizerUnavailable when the model's tokenizer cannot be loaded now."""
    base_model = services.fine_tunable_model(model_id=request.model)
    training_file = services.fine_tuning_file(
        tenant=tenant, file_id=request.training_file, param="training_file"
    )
    if request.validation_file:
        services.fine_tuning_file(
            tenant=tenant, file_id=request.validation_file, param="validation_file"
        )
    if training_file.status != File.Status.PROCESSED:
        raise TenantError(
            f"File {training_file.public_id} is still being validated; the estimate is "
            "available once it is processed.",
            code="file_not_ready",
            param="training_file",
        )
    counts, exact = _token_counts(base_model, training_file, hold_out=not request.validation_file)
    unsaved = FineTuningJob(
        base_model=base_model,
        training_type=request.training_type,
        hyperparameters=request.hyperparameters,
    )
    try:
        resolved = job_spec.resolve_hyperparameters(unsaved, counts)
    except InvalidHyperparameter as error:
        raise TenantError(
            str(error),
            code="invalid_hyperparameters",
            param=_request_param(error.field),
        ) from None
    return TrainingEstimate(
        base_model=base_model,
        training_file=training_file,
        n_examples=counts["n_examples"],
        tokens_per_epoch=counts["trained_tokens_per_epoch"],
        hyperparameters=resolved,
        epochs_auto=request.hyperparameters.get("n_epochs", AUTO) == AUTO,
        exact=exact,
        held_out=(counts.get("holdout") or {}).get("count", 0),
    )


def _request_param(field: str) -> str:
    """The request's name for what the resolver refused (`lora_r` is `hyperparameters.lora_rank`)."""
    if field in hp.BY_KEY:
        return f"hyperparameters.{hp.BY_KEY[field].name}"
    return field


def _token_counts(base_model: BaseModel, file: File, *, hold_out: bool) -> tuple[dict, bool]:
    if file.bytes > EXACT_COUNT_MAX_BYTES or not file.normalized_key:
        statistics = (file.validation or {}).get("statistics") or {}
        counts = {
            "n_examples": statistics.get("n_examples") or 0,
            "trained_tokens_per_epoch": statistics.get("total_tokens") or 0,
        }
        return counts, False
    try:
        # A rebuilt tokenizer must not be answered from the cache.
        stamp = (model_folder(base_model) / "tokenizer.json").stat().st_mtime_ns
    except OSError as error:
        raise TokenizerUnavailable(
            f"the tokenizer of {base_model.model_id!r} is missing: {error}"
        ) from None
    key = (
        f"finetuning:token-counts:v2:{base_model.pk}:{base_model.context_length}:{stamp}:"
        f"{file.public_id}:{int(hold_out)}"
    )
    counts = cache.get(key)
    if counts is None:
        try:
            counts = job_spec.dataset_token_counts(base_model, file, hold_out=hold_out)
        except FileNotFoundError as error:  # the encoder's word for an unusable model folder
            raise TokenizerUnavailable(str(error)) from None
        cache.set(key, counts, COUNTS_CACHE_SECONDS)
    return counts, True
