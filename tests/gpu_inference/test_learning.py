"""The auto hyperparameters teach the properly trained demo model a small chat dataset.

Slow: the demo model is built once into $MODEL_ROOT (shared with the rest of the
suite; `make test` points it at var/models) or, without it, into a temporary folder.
Building takes ~2.5 minutes on two cores; the fine-tune itself ~5 s.
"""

import os
from pathlib import Path

import pytest

from gpu_inference.demo_model import ensure_demo_model
from gpu_inference.formats import ExampleEncoder
from gpu_inference.hyperparameters import resolve_hyperparameters
from gpu_inference.training import run_training
from tests.gpu_inference.helpers import (
    PIRATE_CHATS,
    RecordingReporter,
    chat_example,
    pirate_questions,
)


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory) -> Path:
    root = os.environ.get("MODEL_ROOT")
    return ensure_demo_model(Path(root) if root else tmp_path_factory.mktemp("models"))


@pytest.mark.slow
def test_auto_hyperparameters_learn_twenty_consistent_chats(demo_model, pirate_file, tmp_path):
    from gpu_inference.generation import chat, load_model

    encoder = ExampleEncoder(demo_model)
    examples = [chat_example(q, a) for q, a in PIRATE_CHATS]
    base, _ = load_model(demo_model)
    hyperparameters = resolve_hyperparameters(
        {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
        n_examples=len(examples),
        n_train_tokens=sum(encoder.count_tokens(example) for example in examples),
        n_params=base.num_parameters(),
        method="lora",
    )
    spec = {
        "job_id": "ftjob-learning",
        "base_model_path": str(demo_model),
        "training_file": str(pirate_file),
        "validation_file": None,
        "output_dir": str(tmp_path / "out"),
        "method": "lora",
        "hyperparameters": hyperparameters,
        "seed": 0,
    }
    result = run_training(spec, RecordingReporter())

    model, tokenizer = load_model(demo_model, result["output_dir"])
    answers = [
        chat(model, tokenizer, [{"role": "user", "content": q}], max_new_tokens=40)
        for q, _ in PIRATE_CHATS
    ]
    reproduced = sum(
        answer == expected for answer, (_, expected) in zip(answers, PIRATE_CHATS, strict=True)
    )
    # Measured 20 / 20 with seeds 0 and 1 (see gpu_inference/hyperparameters.py).
    assert reproduced >= 19, list(zip(answers, PIRATE_CHATS, strict=True))
    # The style carries over to questions it was not trained on.
    unseen = [q for q, _ in pirate_questions(20, seed=999)]
    styled = sum(
        chat(model, tokenizer, [{"role": "user", "content": q}], max_new_tokens=16).startswith(
            "Ahoy, matey!"
        )
        for q in unseen
    )
    assert styled >= 18
