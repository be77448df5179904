"""Reading a create-job request: OpenAI's fields and bounds, plus our LoRA extensions.

Each bad value raises TenantError naming the parameter as the client sent it
(`hyperparameters.n_epochs`, `method.supervised.hyperparameters.batch_size`, ...).
"""

import math
import re
from dataclasses import dataclass, field
from typing import Any

from gpu_inference import hyperparameters as hp
from tenants.errors import TenantError

AUTO = hp.AUTO
# The trainer's own bounds (gpu_inference.hyperparameters), so what the API accepts trains.
HYPERPARAMETERS = hp.BY_NAME
TRAINING_TYPES = hp.METHODS
SUFFIX_MAX_LENGTH = 64
SUFFIX = re.compile(rf"^[A-Za-z0-9._-]{{1,{SUFFIX_MAX_LENGTH}}}$")
METADATA_MAX_PAIRS = 16
MAX_SEED = 2**31 - 1


def _bad(message: str, param: str, code: str = "invalid_value") -> TenantError:
    return TenantError(message, code=code, param=param)


def metadata_check(metadata) -> dict[str, str] | None:
    """OpenAI's `metadata` (jobs, batches): at most 16 pairs, keys of at most 64
    characters, string values of at most 512; None when absent."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or len(metadata) > METADATA_MAX_PAIRS:
        raise _bad("metadata must be an object of at most 16 string pairs.", "metadata")
    for key, value in metadata.items():
        if not isinstance(value, str) or len(key) > 64 or len(value) > 512 or "\x00" in key + value:
            raise _bad(
                "metadata keys must be at most 64 characters and values strings of at most 512.",
                f"metadata.{key}",
            )
    return metadata


@dataclass
class JobRequest:
    model: str
    training_file: str
    validation_file: str | None = None
    suffix: str = ""
    seed: int | None = None
    metadata: dict[str, str] | None = None
    training_type: str = "lora"
    hyperparameters: dict[str, Any] = field(default_factory=dict)


def _hyperparameter(name: str, value: Any, param: str) -> Any:
    if value == AUTO:
        return AUTO
    spec = HYPERPARAMETERS[name]
    kind, low, high = spec.kind, spec.low, spec.high
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(f"{param} must be 'auto' or a number, got {value!r}.", param)
    if kind is int and value != int(value):
        raise _bad(f"{param} must be a whole number, got {value!r}.", param)
    if not low <= value <= high:
        raise _bad(f"{param} must be at least {low:g} and at most {high:g}, got {value!r}.", param)
    return kind(value)


def _hyperparameters(raw: Any, prefix: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _bad(f"{prefix} must be an object.", prefix)
    unknown = sorted(set(raw) - set(HYPERPARAMETERS))
    if unknown:
        raise _bad(
            f"Unknown hyperparameter {unknown[0]!r}; allowed: {', '.join(HYPERPARAMETERS)}.",
            f"{prefix}.{unknown[0]}",
        )
    return {name: _hyperparameter(name, value, f"{prefix}.{name}") for name, value in raw.items()}


def _string(data: dict, name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise _bad(f"{name} is required.", name, code="missing_required_parameter")
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise _bad(f"{name} must be a string.", name)
    return value


def parse_job_request(data: Any) -> JobRequest:
    if not isinstance(data, dict):
        raise _bad("The request body must be a JSON object.", "body")
    request = JobRequest(
        model=_string(data, "model", required=True),
        training_file=_string(data, "training_file", required=True),
        validation_file=_string(data, "validation_file"),
    )
    suffix = _string(data, "suffix")
    if suffix is not None:
        if not SUFFIX.fullmatch(suffix):
            raise _bad(
                "suffix must be 1 to 64 characters of letters, digits, '.', '_' or '-'.", "suffix"
            )
        request.suffix = suffix
    seed = data.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise _bad(f"seed must be a whole number from 0 to {MAX_SEED}.", "seed")
        request.seed = seed
    request.metadata = metadata_check(data.get("metadata"))
    training_type = data.get("training_type", "lora")
    if training_type not in TRAINING_TYPES:
        raise _bad(f"training_type must be one of {', '.join(TRAINING_TYPES)}.", "training_type")
    request.training_type = training_type

    hyperparameters = _hyperparameters(data.get("hyperparameters"), "hyperparameters")
    method = data.get("method")
    if method is not None:
        if not isinstance(method, dict):
            raise _bad("method must be an object.", "method")
        method_type = method.get("type", "supervised")
        if method_type != "supervised":
            raise _bad(
                f"method.type {method_type!r} is not supported; use 'supervised'.",
                "method.type",
                code="unsupported_method",
            )
        supervised = method.get("supervised") or {}
        if not isinstance(supervised, dict):
            raise _bad("method.supervised must be an object.", "method.supervised")
        from_method = _hyperparameters(
            supervised.get("hyperparameters"), "method.supervised.hyperparameters"
        )
        if hyperparameters and from_method:
            raise _bad(
                "Give hyperparameters either at the top level or in method.supervised, not both.",
                "hyperparameters",
            )
        hyperparameters = hyperparameters or from_method
    if training_type == "full":
        lora_only = sorted(name for name in hyperparameters if HYPERPARAMETERS[name].lora_only)
        if lora_only:
            raise _bad(
                f"{lora_only[0]} applies to LoRA only, not to full fine-tuning.", "hyperparameters"
            )
    request.hyperparameters = hyperparameters
    return request
