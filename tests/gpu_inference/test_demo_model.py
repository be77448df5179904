import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gpu_inference import demo_model
from gpu_inference.demo_model import METADATA_FILE, build_demo_model, ensure_demo_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def builds(monkeypatch) -> list[Path]:
    """Makes ensure_demo_model's builds one step long (stamped as the default) and records them."""
    made: list[Path] = []
    real_build = demo_model._build

    def one_step_build(out_dir: Path, **kwargs) -> None:
        made.append(out_dir)
        real_build(out_dir, **{**kwargs, "steps": 1})
        metadata = json.loads((out_dir / METADATA_FILE).read_text())
        metadata["steps"] = demo_model.DEFAULT_STEPS
        (out_dir / METADATA_FILE).write_text(json.dumps(metadata))

    monkeypatch.setattr(demo_model, "_build", one_step_build)
    return made


def test_the_quick_model_is_a_complete_hugging_face_folder(quick_model):
    for name in (
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ):
        assert (quick_model / name).is_file(), name
    metadata = json.loads((quick_model / METADATA_FILE).read_text())
    assert metadata["steps"] == 40
    assert metadata["validation_loss"] > 0
    assert metadata["seconds"] > 0


def test_the_tokenizer_and_generation_config_know_the_chat_tokens(quick_model):
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(str(quick_model))
    generation = GenerationConfig.from_pretrained(str(quick_model))
    end_of_turn = tokenizer.convert_tokens_to_ids("<|end|>")
    assert end_of_turn in generation.eos_token_id
    assert (
        generation.pad_token_id
        == tokenizer.pad_token_id
        == tokenizer.convert_tokens_to_ids("<|pad|>")
    )
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|user|>\nHi<|end|><|assistant|>\n"


def test_chat_answers_without_special_tokens(quick_model):
    from gpu_inference.generation import chat, load_model

    model, tokenizer = load_model(quick_model)
    answer = chat(
        model,
        tokenizer,
        [{"role": "user", "content": "What is the capital of France?"}],
        max_new_tokens=8,
    )
    assert isinstance(answer, str)
    assert "<|" not in answer
    # Long conversations keep their end, so the prompt and the answer fit the context.
    assert isinstance(
        chat(model, tokenizer, [{"role": "user", "content": "word " * 400}], max_new_tokens=4), str
    )


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def crash(out_dir: Path, **kwargs) -> None:
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("power cut")

    monkeypatch.setattr(demo_model, "_build", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        build_demo_model(tmp_path / "tiny-chat")
    assert list(tmp_path.iterdir()) == []


def test_ensure_builds_once_even_when_called_concurrently(tmp_path, builds):
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_demo_model(tmp_path)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [tmp_path / "tiny-chat"] * 3
    assert len(builds) == 1
    assert ensure_demo_model(tmp_path) == tmp_path / "tiny-chat"
    assert len(builds) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny-chat.lock", "tiny-chat"]


def test_ensure_replaces_a_model_built_by_an_older_recipe(tmp_path, builds):
    stale = tmp_path / "tiny-chat"
    stale.mkdir()
    (stale / METADATA_FILE).write_text(json.dumps({"recipe": 0, "seed": 0, "steps": 850}))
    assert ensure_demo_model(tmp_path) == stale
    metadata = json.loads((stale / METADATA_FILE).read_text())
    assert metadata["recipe"] == demo_model.RECIPE_VERSION
    assert (stale / "model.safetensors").is_file()
    assert len(builds) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny-chat.lock", "tiny-chat"]


def test_build_refuses_an_existing_folder(tmp_path):
    with pytest.raises(FileExistsError):
        build_demo_model(tmp_path)


def test_the_command_line_builds_the_same_model_as_the_function(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gpu_inference.demo_model", str(tmp_path / "cli"), "--steps", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["steps"] == 2 and printed["validation_loss"] > 0

    # Deterministic per seed, across processes too.
    def weights(folder: Path) -> bytes:
        return (folder / "model.safetensors").read_bytes()

    assert weights(build_demo_model(tmp_path / "same", seed=0, steps=2)) == weights(
        tmp_path / "cli"
    )
    assert weights(build_demo_model(tmp_path / "other", seed=1, steps=2)) != weights(
        tmp_path / "cli"
    )
