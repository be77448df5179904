"""Turning requested fine-tuning hyperparameters ("auto" or numbers) into concrete ones.

Requested values are "auto" (or absent) or numbers; `learning_rate_multiplier`
multiplies the auto base rate, as in OpenAI's API. Out-of-range values raise
`InvalidHyperparameter` naming the field.

Why the auto values are what they are, measured on the demo model "tiny-chat"
(658k parameters, seed 0, 850 steps, validation loss 1.02) at one CPU thread with
`python tests/bench/training.py hyperparameters --part lora|full|curves` (LoRA r=16,
alpha=32 on all linear layers, constant learning rate, AdamW). The data set is
`tests/gpu_inference/helpers.py:PIRATE_CHATS`: 20 varied questions, every answer
opening "Ahoy, matey!". "exact" counts trained answers that greedy decoding
reproduces word for word; "styled" counts 20 unseen questions answered in the style.

    epochs  lr     batch  exact, seed 0 / 1   styled, seed 0 / 1
    3       5e-3   4       0 /  0             20 / 20
    5       5e-3   4       3 /  2             20 / 20
    10      5e-3   4      11 / 12             20 / 20
    15      5e-3   4      17 / 18             20 / 20
    20      5e-3   4      19 / 19             20 / 20
    25      5e-3   4      20 / 20             20 / 20    <- auto for 20 examples
    25      3e-3   4      20 / 19             20 / 20
    25      1e-2   4      16 / 13             20 / 18    (never above 16 at 3-25 epochs)
    25      5e-3   2      17 / 12             20 / 20
    25      5e-3   8      19 / 19             20 / 20
  The style is learned within 3 epochs; reproducing the answers takes 25. A linear
  decay to zero instead of a constant rate was never better (25 epochs, 5e-3:
  18 / 20; measured with a switch since removed), so the rate is constant. Full fine-tuning, batch 4: 1e-3 gives 16 / 19 /
  20 exact at 10 / 15 / 25 epochs, 3e-4 gives 5 / 10 / 19, 3e-3 gives 17 / 20 / 20
  (train loss 0.001: memorizing).

  Epochs for bigger sets (the same style over generated corpus-style questions, 200
  held-out examples as validation, LoRA 5e-3): validation loss is lowest after 3-4
  epochs at 20, 100 and 400 examples and after 6 at 1,600 (400: 0.751, 0.699,
  0.687, 0.674, 0.698 for epochs 1-5). Memorizing 20 answers costs some validation
  loss (1.02 at epoch 3, 1.24 at 25). Hence OpenAI's shape of rule: about
  TARGET_EXAMPLES example passes for small sets (ceil(500 / n) epochs, at most 25),
  3 epochs from 167 examples up. Batch sizes above 8 are not measured.

Learning rates for models bigger than the demo are NOT measured here: the base rate
is interpolated on a log-log line from the measured demo point to the rates commonly
used for 7B models (LoRA 2e-4, full 1e-5), and clamped beyond both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

AUTO = "auto"
METHODS = ("lora", "full")


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter a request may set: the single source of its name, type and
    bounds for the API's checks, its OpenAPI schema, the dashboard and this resolver."""

    name: str  # as a request (and OpenAI) names it
    key: str  # as the resolver and the job spec name it
    kind: type
    low: float
    high: float
    description: str
    lora_only: bool = False
    extension: bool = False  # ours, not OpenAI's

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high)


# Bounds a request may ask for; "auto" always resolves inside them.
REQUESTABLE = (
    Hyperparameter("n_epochs", "n_epochs", int, 1, 50, "passes over the training file"),
    Hyperparameter("batch_size", "batch_size", int, 1, 256, "examples per training step"),
    Hyperparameter(
        "learning_rate_multiplier",
        "learning_rate_multiplier",
        float,
        0.01,
        10.0,
        "multiplies the automatic learning rate",
    ),
    Hyperparameter("lora_rank", "lora_r", int, 1, 256, "LoRA rank", lora_only=True, extension=True),
    Hyperparameter(
        "lora_alpha", "lora_alpha", float, 1, 1024, "LoRA alpha", lora_only=True, extension=True
    ),
)
BY_NAME = {hyperparameter.name: hyperparameter for hyperparameter in REQUESTABLE}
BY_KEY = {hyperparameter.key: hyperparameter for hyperparameter in REQUESTABLE}


def from_request(requested: dict[str, Any]) -> dict[str, Any]:
    """A request's hyperparameters (by request name) as the resolver takes them (by key)."""
    return {h.key: requested.get(h.name, AUTO) for h in REQUESTABLE}


# Auto epochs: small sets are passed over until about TARGET_EXAMPLES examples were
# trained, bigger ones DEFAULT_EPOCHS times (see the measurements above).
TARGET_EXAMPLES = 500
DEFAULT_EPOCHS = 3
MAX_AUTO_EPOCHS = 25
# Batches of about this share of the data, within these bounds: 4 up to ~1,000
# examples (best measured at 20), then growing slowly (not measured beyond 8).
BATCH_FRACTION = 1 / 200
AUTO_BATCH_RANGE = (4, 64)
# A batch is also kept under this many tokens, so memory stays bounded.
MAX_BATCH_TOKENS = 16_384

DEFAULT_LORA_R = 16
DEFAULT_LORA_ALPHA = 32

# (parameters, base learning rate): the measured demo model, then the usual 7B rates.
DEMO_MODEL_PARAMETERS = 658_048
LORA_RATE_ANCHORS = ((DEMO_MODEL_PARAMETERS, 5e-3), (7e9, 2e-4))
FULL_RATE_ANCHORS = ((DEMO_MODEL_PARAMETERS, 1e-3), (7e9, 1e-5))

KNOWN_KEYS = set(BY_KEY)


class InvalidHyperparameter(ValueError):
    """A requested value the platform must refuse; `field` names the hyperparameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def resolve_hyperparameters(
    requested: dict[str, Any],
    *,
    n_examples: int,
    n_train_tokens: int,
    n_params: int,
    method: str,
) -> dict[str, Any]:
    """Concrete n_epochs, batch_size, learning_rate (absolute) and, for LoRA, lora_r and lora_alpha."""
    if method not in METHODS:
        raise InvalidHyperparameter("method", f"must be one of {', '.join(METHODS)}")
    if n_examples < 1:
        raise InvalidHyperparameter("training_file", "has no examples")
    unknown = set(requested) - KNOWN_KEYS
    if method == "full":
        # "auto" LoRA fields are harmless (a form may send every field); numbers are a mistake.
        unknown |= {
            h.key
            for h in REQUESTABLE
            if h.lora_only and requested.get(h.key, AUTO) not in (AUTO, None)
        }
    if unknown:
        raise InvalidHyperparameter(sorted(unknown)[0], "is not a hyperparameter of this method")

    n_epochs = _integer(requested, "n_epochs")
    batch_size = _integer(requested, "batch_size")
    multiplier = _number(requested, "learning_rate_multiplier")
    resolved: dict[str, Any] = {
        "n_epochs": n_epochs if n_epochs is not None else auto_epochs(n_examples),
        "batch_size": (
            batch_size
            if batch_size is not None
            else auto_batch_size(n_examples, n_train_tokens=n_train_tokens)
        ),
    }
    multiplier = 1.0 if multiplier is None else multiplier
    resolved["learning_rate_multiplier"] = multiplier
    resolved["learning_rate"] = base_learning_rate(n_params, method=method) * multiplier
    if method == "lora":
        lora_r = _integer(requested, "lora_r")
        lora_alpha = _number(requested, "lora_alpha")
        resolved["lora_r"] = lora_r if lora_r is not None else DEFAULT_LORA_R
        # alpha/r scales the adapter's output; keep the measured 2:1 when only r is chosen.
        resolved["lora_alpha"] = lora_alpha if lora_alpha is not None else 2 * resolved["lora_r"]
    return resolved


def auto_epochs(n_examples: int) -> int:
    if n_examples * DEFAULT_EPOCHS >= TARGET_EXAMPLES:
        return DEFAULT_EPOCHS
    return min(MAX_AUTO_EPOCHS, math.ceil(TARGET_EXAMPLES / n_examples))


def auto_batch_size(n_examples: int, *, n_train_tokens: int) -> int:
    low, high = AUTO_BATCH_RANGE
    size = max(low, min(high, _power_of_two(n_examples * BATCH_FRACTION)))
    mean_tokens = max(1, n_train_tokens // n_examples)
    while size > 1 and size * mean_tokens > MAX_BATCH_TOKENS:
        size //= 2
    return min(size, n_examples)


def base_learning_rate(n_params: int, *, method: str) -> float:
    (small_params, small_rate), (large_params, large_rate) = (
        LORA_RATE_ANCHORS if method == "lora" else FULL_RATE_ANCHORS
    )
    position = (math.log(max(n_params, 1)) - math.log(small_params)) / (
        math.log(large_params) - math.log(small_params)
    )
    position = min(1.0, max(0.0, position))
    rate = math.exp(math.log(small_rate) + position * (math.log(large_rate) - math.log(small_rate)))
    return float(f"{rate:.3g}")  # 5e-3, not 0.005000000000000002


def _power_of_two(value: float) -> int:
    return 1 << max(0, round(math.log2(max(value, 1.0))))


def _integer(requested: dict[str, Any], field: str) -> int | None:
    value = requested.get(field, AUTO)
    if value == AUTO or value is None:
        return None
    # JSON gives 3.0 for some clients; a whole float is fine, 2.5 epochs is not.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise InvalidHyperparameter(field, f"must be 'auto' or an integer, got {value!r}")
    return int(_within(field, value, BY_KEY[field].bounds))


def _number(requested: dict[str, Any], field: str) -> float | None:
    value = requested.get(field, AUTO)
    if value == AUTO or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidHyperparameter(field, f"must be 'auto' or a number, got {value!r}")
    return float(_within(field, value, BY_KEY[field].bounds))


def _within(field: str, value: float, bounds: tuple[float, float]) -> float:
    low, high = bounds
    if not low <= value <= high:
        raise InvalidHyperparameter(field, f"must be between {low} and {high}, got {value!r}")
    return value
