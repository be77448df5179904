"""Training benchmarks on the demo model (a script, not a test).

    python tests/bench/training.py [throughput] [--model DIR]
        tokens/s of run_training against a bare PEFT loop on the same model and data,
        and their ratio. Both count non-padding tokens of the batches they train.
    python tests/bench/training.py hyperparameters [--model DIR] [--part lora|full|curves]
        the measurements behind gpu_inference/hyperparameters.py's auto values.

The model is --model, else the demo model in $MODEL_ROOT (default var/models),
built there first if missing (~2.5 minutes). Run from the repository root.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gpu_inference.demo_model import ensure_demo_model  # noqa: E402
from gpu_inference.formats import IGNORE_INDEX, ExampleEncoder  # noqa: E402
from gpu_inference.runtime import configure_torch  # noqa: E402
from gpu_inference.training import run_training  # noqa: E402
from tests.gpu_inference.helpers import (  # noqa: E402
    PIRATE_CHATS,
    RecordingReporter,
    chat_example,
    pirate_questions,
    write_jsonl,
)

LORA = {"lora_r": 16, "lora_alpha": 32}
THROUGHPUT = {"n_epochs": 2, "batch_size": 8, "learning_rate": 5e-3, **LORA}


def spec_for(
    model: Path, training: Path, out: Path, hyperparameters: dict[str, Any], **extra: Any
) -> dict:
    return {
        "job_id": "bench",
        "base_model_path": str(model),
        "training_file": str(training),
        "validation_file": None,
        "output_dir": str(out),
        "method": "lora",
        "hyperparameters": hyperparameters,
        "seed": 0,
        **extra,
    }


def bare_peft_tokens_per_second(
    model_dir: Path, examples: list[dict], hyper: dict[str, Any]
) -> float:
    """The least a LoRA loop can do: HF loss, AdamW, same batches; timed over the steps only."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from gpu_inference.runtime import peft_deprecation_silenced

    encoder = ExampleEncoder(model_dir)
    encoded = [encoder.encode(example) for example in examples]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    config = LoraConfig(
        r=hyper["lora_r"],
        lora_alpha=hyper["lora_alpha"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    with peft_deprecation_silenced():
        model = get_peft_model(model, config)
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=hyper["learning_rate"]
    )
    generator = torch.Generator().manual_seed(0)
    tokens = 0
    seconds = 0.0
    for _ in range(hyper["n_epochs"]):
        order = torch.randperm(len(encoded), generator=generator).tolist()
        for start in range(0, len(encoded), hyper["batch_size"]):
            began = time.perf_counter()
            batch = [encoded[i] for i in order[start : start + hyper["batch_size"]]]
            width = max(len(ids) for ids, _ in batch)
            input_ids = torch.tensor([ids + [0] * (width - len(ids)) for ids, _ in batch])
            labels = torch.tensor([lab + [IGNORE_INDEX] * (width - len(lab)) for _, lab in batch])
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            seconds += time.perf_counter() - began
            tokens += int(mask.sum())
    return tokens / seconds


def throughput(model: Path) -> None:
    examples = [chat_example(q, a) for q, a in pirate_questions(256, seed=1)]
    with tempfile.TemporaryDirectory() as tmp:
        training = write_jsonl(Path(tmp) / "train.jsonl", examples)
        rows = []
        # Alternate the two so that a noisy neighbour hurts both alike; keep the best of each.
        for attempt in range(2):
            bare = bare_peft_tokens_per_second(model, examples, THROUGHPUT)
            began = time.perf_counter()
            result = run_training(
                spec_for(model, training, Path(tmp) / f"out{attempt}", THROUGHPUT),
                RecordingReporter(),
            )
            wall = time.perf_counter() - began
            rows.append(
                (bare, result["metrics"]["tokens_per_second"], result["trained_tokens"] / wall)
            )
    bare, steps, end_to_end = (max(column) for column in zip(*rows, strict=True))
    tokens = sum(len(ExampleEncoder(model).encode(e)[0]) for e in examples) * THROUGHPUT["n_epochs"]
    print(
        f"model {model}, {len(examples)} examples, {tokens} tokens trained per run, torch threads {configure_torch()}"
    )
    print(f"bare PEFT loop            {bare:9.0f} tokens/s")
    print(f"run_training (steps only) {steps:9.0f} tokens/s   ratio {steps / bare:.2f}")
    print(
        f"run_training (end to end) {end_to_end:9.0f} tokens/s   ratio {end_to_end / bare:.2f}  (load, checkpoints, save included)"
    )


def reproduced(
    model: Path, output_dir: str, pairs: list[tuple[str, str]], unseen: list[str]
) -> tuple[int, int]:
    """(trained answers greedy decoding reproduces exactly, unseen questions answered in the style)."""
    from gpu_inference.generation import chat, load_model

    tuned, tokenizer = load_model(model, output_dir)
    exact = sum(
        chat(tuned, tokenizer, [{"role": "user", "content": q}], max_new_tokens=40) == a
        for q, a in pairs
    )
    styled = sum(
        chat(tuned, tokenizer, [{"role": "user", "content": q}], max_new_tokens=16).startswith(
            "Ahoy, matey!"
        )
        for q in unseen
    )
    return exact, styled


def hyperparameters(model: Path, part: str) -> None:
    unseen = [q for q, _ in pirate_questions(20, seed=999)]
    with tempfile.TemporaryDirectory() as tmp:
        training = write_jsonl(
            Path(tmp) / "pirate.jsonl", [chat_example(q, a) for q, a in PIRATE_CHATS]
        )
        if part in ("lora", "full"):
            if part == "lora":
                grid = itertools.product(
                    (3, 5, 10, 15, 20, 25), (3e-3, 5e-3, 1e-2), (2, 4, 8), (0, 1)
                )
            else:
                grid = itertools.product((10, 15, 25), (3e-4, 1e-3, 3e-3), (4,), (0,))
            print("method epochs lr batch seed exact/20 styled/20 train_loss seconds")
            for epochs, rate, batch, seed in grid:
                hyper = {
                    "n_epochs": epochs,
                    "batch_size": batch,
                    "learning_rate": rate,
                    **(LORA if part == "lora" else {}),
                }
                began = time.perf_counter()
                out = Path(tmp) / "out"
                result = run_training(
                    spec_for(model, training, out, hyper, method=part, seed=seed),
                    RecordingReporter(),
                )
                seconds = time.perf_counter() - began
                exact, styled = reproduced(model, result["output_dir"], PIRATE_CHATS, unseen)
                loss = result["metrics"]["train_loss_mean"]
                print(
                    f"{part} {epochs} {rate:g} {batch} {seed} {exact} {styled} {loss:.3f} {seconds:.1f}",
                    flush=True,
                )
        else:
            for n_examples, epochs, batch in ((20, 25, 4), (100, 25, 4), (400, 8, 8), (1600, 8, 8)):
                pairs = pirate_questions(n_examples + 200, seed=5)
                train = write_jsonl(
                    Path(tmp) / "t.jsonl", [chat_example(q, a) for q, a in pairs[:n_examples]]
                )
                valid = write_jsonl(
                    Path(tmp) / "v.jsonl", [chat_example(q, a) for q, a in pairs[n_examples:]]
                )
                hyper = {"n_epochs": epochs, "batch_size": batch, "learning_rate": 5e-3, **LORA}
                reporter = RecordingReporter()
                run_training(
                    spec_for(model, train, Path(tmp) / "out", hyper, validation_file=str(valid)),
                    reporter,
                )
                losses = [round(m["valid_loss"], 3) for m in reporter.epoch_metrics]
                best = losses.index(min(losses)) + 1
                print(
                    f"{n_examples} examples, batch {batch}: lowest validation loss after epoch {best}: {losses}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "what", nargs="?", choices=("throughput", "hyperparameters"), default="throughput"
    )
    parser.add_argument("--model", type=Path)
    parser.add_argument("--part", choices=("lora", "full", "curves"), default="lora")
    args = parser.parse_args()
    model = args.model or ensure_demo_model(
        Path(os.environ.get("MODEL_ROOT", ROOT / "var" / "models"))
    )
    configure_torch()
    if args.what == "throughput":
        throughput(model)
    else:
        hyperparameters(model, args.part)


if __name__ == "__main__":
    main()
