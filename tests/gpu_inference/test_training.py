import json
from pathlib import Path

import pytest

from gpu_inference.formats import ExampleEncoder
from gpu_inference.training import TrainingCancelled, TrainingError, run_training
from tests.gpu_inference.helpers import PIRATE_CHATS, RecordingReporter, chat_example, write_jsonl

LORA = {"n_epochs": 3, "batch_size": 4, "learning_rate": 5e-3, "lora_r": 16, "lora_alpha": 32}


def make_spec(model: Path, training_file: Path, output_dir: Path, **overrides) -> dict:
    spec = {
        "job_id": "ftjob-test",
        "base_model_path": str(model),
        "training_file": str(training_file),
        "validation_file": None,
        "output_dir": str(output_dir),
        "method": "lora",
        "hyperparameters": dict(LORA),
        "seed": 0,
    }
    spec.update(overrides)
    return spec


def test_lora_training_learns_reports_and_saves_a_loadable_adapter(
    quick_model, pirate_file, tmp_path, reporter
):
    from gpu_inference.generation import chat, load_model

    validation_file = write_jsonl(
        tmp_path / "valid.jsonl", [chat_example(q, a) for q, a in PIRATE_CHATS[:4]]
    )
    spec = make_spec(
        quick_model, pirate_file, tmp_path / "out", validation_file=str(validation_file)
    )
    result = run_training(spec, reporter)

    steps = reporter.step_metrics
    assert [m["step"] for m in steps] == list(range(1, 16))  # 20 examples / 4 per batch * 3 epochs
    assert {m["total_steps"] for m in steps} == {15}
    assert steps[-1]["epoch"] == 3 and steps[-1]["eta_seconds"] == 0
    assert all(m["tokens_per_second"] > 0 and 0 <= m["train_token_accuracy"] <= 1 for m in steps)
    first, last = reporter.epoch_metrics[0], reporter.epoch_metrics[-1]
    assert last["train_loss_mean"] < first["train_loss_mean"] * 0.8
    assert last["valid_loss"] < first["valid_loss"]
    assert "valid_token_accuracy" in last

    assert [c["epoch"] for c in reporter.checkpoints] == [1, 2, 3]
    for checkpoint in reporter.checkpoints:
        assert (Path(checkpoint["path"]) / "adapter_config.json").is_file()
    messages = [message for _, message, _ in reporter.events]
    assert messages[0].startswith("Training started: 20 examples, 3 epochs, 15 steps")
    steps = reporter.step_metrics
    assert [data["step"] for data in steps] == list(range(1, 16))
    assert steps[-1]["total_steps"] == 15 and steps[-1]["tokens_per_second"] > 0
    assert messages[-1].startswith("Training finished")

    encoder = ExampleEncoder(quick_model)
    per_epoch = sum(min(encoder.count_tokens(chat_example(q, a)), 256) for q, a in PIRATE_CHATS)
    assert result["trained_tokens"] == 3 * per_epoch
    final = Path(result["output_dir"])
    assert (final / "adapter_config.json").is_file() and (final / "tokenizer.json").is_file()
    assert result["metrics"]["train_loss_mean"] == last["train_loss_mean"]

    question = [{"role": "user", "content": PIRATE_CHATS[0][0]}]
    base_answer = chat(*load_model(quick_model), question)
    tuned_answer = chat(*load_model(quick_model, final), question)
    assert tuned_answer != base_answer


def test_same_seed_gives_the_same_losses(quick_model, pirate_file, tmp_path):
    def losses(seed: int, name: str) -> list[float]:
        reporter = RecordingReporter()
        hyper = {**LORA, "n_epochs": 2}
        run_training(
            make_spec(quick_model, pirate_file, tmp_path / name, hyperparameters=hyper, seed=seed),
            reporter,
        )
        return [m["train_loss"] for m in reporter.step_metrics]

    first = losses(7, "a")
    assert losses(7, "b") == first
    assert losses(8, "c") != first


def test_cancelling_stops_within_one_step(quick_model, pirate_file, tmp_path):
    reporter = RecordingReporter(cancel_after_steps=2)
    with pytest.raises(TrainingCancelled, match="before step 3/15"):
        run_training(make_spec(quick_model, pirate_file, tmp_path / "out"), reporter)
    assert len(reporter.step_metrics) == 2
    assert reporter.checkpoints == []


def test_full_fine_tune_saves_a_complete_model(quick_model, pirate_file, tmp_path, reporter):
    from gpu_inference.generation import chat, load_model

    hyper = {"n_epochs": 2, "batch_size": 4, "learning_rate": 1e-3}
    result = run_training(
        make_spec(quick_model, pirate_file, tmp_path / "out", method="full", hyperparameters=hyper),
        reporter,
    )
    final = Path(result["output_dir"])
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json"):
        assert (final / name).is_file(), name
    assert (
        reporter.epoch_metrics[-1]["train_loss_mean"] < reporter.epoch_metrics[0]["train_loss_mean"]
    )
    assert isinstance(chat(*load_model(final), [{"role": "user", "content": "Hello!"}]), str)


def test_examples_longer_than_the_context_are_truncated_with_a_warning(
    quick_model, tmp_path, reporter
):
    long_example = chat_example("tell me " * 200, "ok " * 100)
    training_file = write_jsonl(
        tmp_path / "long.jsonl", [long_example, chat_example("Hi", "Hello")]
    )
    hyper = {**LORA, "n_epochs": 1}
    result = run_training(
        make_spec(quick_model, training_file, tmp_path / "out", hyperparameters=hyper), reporter
    )
    assert (
        "warning",
        "1 training examples are longer than the context of 256 tokens and were truncated",
        {"examples": 1},
    ) in reporter.events
    encoder = ExampleEncoder(quick_model)
    assert result["trained_tokens"] == 256 + encoder.count_tokens(chat_example("Hi", "Hello"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "the training file does not exist"),
        ("", "the training file has no examples"),
        (
            '{"messages": [{"role": "user", "content": "hi"}]}\n',
            "line 1: a chat example needs at least one assistant message",
        ),
        ("not json\n", "line 1: invalid JSON"),
        (b"\xff\xfe\n", "not UTF-8"),
    ],
)
def test_a_bad_training_file_fails_with_its_code(quick_model, tmp_path, reporter, content, message):
    path = tmp_path / "train.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(TrainingError, match=message) as failure:
        run_training(make_spec(quick_model, path, tmp_path / "out"), reporter)
    assert failure.value.code == "invalid_training_file"


def test_only_untrainable_examples_are_refused(quick_model, tmp_path, reporter):
    # The answer starts after the 256-token context, so no token would be trained.
    path = write_jsonl(tmp_path / "train.jsonl", [chat_example("word " * 300, "ok")])
    with pytest.raises(TrainingError, match="no example has trained tokens") as failure:
        run_training(make_spec(quick_model, path, tmp_path / "out"), reporter)
    assert failure.value.code == "invalid_training_file"


def test_a_bad_validation_file_has_its_own_code(quick_model, pirate_file, tmp_path, reporter):
    bad = tmp_path / "valid.jsonl"
    bad.write_text('{"prompt": "x"}\n', encoding="utf-8")
    with pytest.raises(TrainingError) as failure:
        run_training(
            make_spec(quick_model, pirate_file, tmp_path / "out", validation_file=str(bad)),
            reporter,
        )
    assert failure.value.code == "invalid_validation_file"
    assert "line 1" in failure.value.message


def test_a_missing_base_model_fails_with_its_code(pirate_file, tmp_path, reporter):
    with pytest.raises(TrainingError) as failure:
        run_training(make_spec(tmp_path / "nowhere", pirate_file, tmp_path / "out"), reporter)
    assert failure.value.code == "base_model_not_found"


@pytest.mark.parametrize(
    "hyperparameters",
    [
        {**LORA, "n_epochs": 0},
        {**LORA, "batch_size": 2.5},
        {**LORA, "learning_rate": "auto"},
        {"n_epochs": 1, "batch_size": 1, "learning_rate": 1e-3},
    ],
)
def test_unresolved_hyperparameters_are_refused(
    quick_model, pirate_file, tmp_path, reporter, hyperparameters
):
    with pytest.raises(TrainingError) as failure:
        run_training(
            make_spec(quick_model, pirate_file, tmp_path / "out", hyperparameters=hyperparameters),
            reporter,
        )
    assert failure.value.code in ("invalid_hyperparameters", "invalid_spec")


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (MemoryError(), "out_of_memory"),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory"), "out_of_memory"),
        (KeyError("boom"), "internal_error"),
    ],
)
def test_failures_during_training_are_mapped_to_codes(
    quick_model, pirate_file, tmp_path, raised, code
):
    class FailingReporter(RecordingReporter):
        def metrics(self, data):
            raise raised

    with pytest.raises(TrainingError) as failure:
        run_training(make_spec(quick_model, pirate_file, tmp_path / "out"), FailingReporter())
    assert failure.value.code == code
    assert failure.value.__cause__ is raised


def test_the_result_is_json_serializable(quick_model, pirate_file, tmp_path, reporter):
    hyper = {**LORA, "n_epochs": 1}
    result = run_training(
        make_spec(quick_model, pirate_file, tmp_path / "out", hyperparameters=hyper), reporter
    )
    json.dumps(result)
    json.dumps(reporter.events)
    json.dumps(reporter.step_metrics + reporter.epoch_metrics)


def test_a_shorter_catalog_context_truncates_like_the_platform_counts(
    quick_model, pirate_file, tmp_path, reporter
):
    spec = make_spec(quick_model, pirate_file, tmp_path / "out", context_length=16)
    spec["hyperparameters"]["n_epochs"] = 1
    result = run_training(spec, reporter)
    encoder = ExampleEncoder(quick_model, context_length=16)
    examples = [chat_example(q, a) for q, a in PIRATE_CHATS]
    assert result["trained_tokens"] == sum(min(encoder.count_tokens(e), 16) for e in examples)


def test_a_held_out_split_is_validated_on_and_never_trained_on(
    quick_model, pirate_file, tmp_path, reporter
):
    from gpu_inference.holdout import Holdout

    holdout = Holdout(count=4, seed=5)
    hyper = {**LORA, "n_epochs": 1}
    spec = make_spec(
        quick_model, pirate_file, tmp_path / "out", hyperparameters=hyper, holdout=holdout.as_dict()
    )
    run_training(spec, reporter)
    started = next(data for _, message, data in reporter.events if message.startswith("Training"))
    assert started["examples"] == len(PIRATE_CHATS) - 4  # 16 trained on
    held = next(message for _, message, _ in reporter.events if message.startswith("Held out"))
    assert (
        held
        == "Held out 4 of 20 training examples for validation (seed 5); they are not trained on"
    )
    epoch = reporter.epoch_metrics[0]
    assert epoch["valid_loss"] > 0 and 0 <= epoch["valid_token_accuracy"] <= 1
    # The same split every time: the platform evaluates exactly these examples.
    assert holdout.indices(20) == Holdout(count=4, seed=5).indices(20)
    assert len(holdout.indices(20)) == 4


def test_a_validation_file_wins_over_a_held_out_split(quick_model, pirate_file, tmp_path, reporter):
    hyper = {**LORA, "n_epochs": 1}
    spec = make_spec(
        quick_model,
        pirate_file,
        tmp_path / "out",
        hyperparameters=hyper,
        validation_file=str(pirate_file),
        holdout={"count": 4, "seed": 5},
    )
    run_training(spec, reporter)
    started = next(data for _, message, data in reporter.events if message.startswith("Training"))
    assert started["examples"] == len(PIRATE_CHATS)
    assert not any(message.startswith("Held out") for _, message, _ in reporter.events)
