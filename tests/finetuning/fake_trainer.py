"""A stand-in for the GPU trainer in worker tests: it reports like the real one,
honours cancellation between steps, and writes a small "adapter".

Behaviour comes from the environment, so a worker process started by a test can
be told what to do: FAKE_TRAINER_MODE ("ok", "fail", "crash"), FAKE_TRAINER_STEPS,
FAKE_TRAINER_STEP_SECONDS.
"""

import json
import os
import time
from pathlib import Path

from gpu_inference.training import TrainingCancelled, TrainingError

TOKENS_PER_EXAMPLE = 10
# Names folders outside the artifact and model roots, as a real crash does.
CRASH = "the fake trainer crashed in /usr/lib/python3/site-packages/x.py, /tmp/scratch"


def run(spec: dict, reporter) -> dict:
    mode = os.environ.get("FAKE_TRAINER_MODE", "ok")
    steps = int(os.environ.get("FAKE_TRAINER_STEPS", "4"))
    step_seconds = float(os.environ.get("FAKE_TRAINER_STEP_SECONDS", "0"))
    output = Path(spec["output_dir"])
    output.mkdir(parents=True, exist_ok=True)
    examples = sum(
        1 for line in Path(spec["training_file"]).read_text().splitlines() if line.strip()
    )
    epochs = spec["hyperparameters"]["n_epochs"]
    reporter.event("info", f"Fake training: {examples} examples, {epochs} epochs, {steps} steps")
    for step in range(1, steps + 1):
        if reporter.should_cancel():
            raise TrainingCancelled
        time.sleep(step_seconds)
        if mode == "fail" and step == 2:
            raise TrainingError(
                "out_of_memory", "the device ran out of memory; try a smaller batch_size"
            )
        if mode == "crash" and step == 2:
            raise RuntimeError(CRASH)
        reporter.metrics(
            {
                "step": step,
                "total_steps": steps,
                "train_loss": round(2.0 / step, 4),
                "train_mean_token_accuracy": 0.5,
            }
        )
        if step % 2 == 0:
            checkpoint = output / f"checkpoint-{step}"
            checkpoint.mkdir(exist_ok=True)
            (checkpoint / "adapter_config.json").write_text(json.dumps({"step": step}))
            reporter.checkpoint(
                {
                    "epoch": step // 2,
                    "step": step,
                    "path": str(checkpoint),
                    "metrics": {"train_loss": 2.0 / step},
                }
            )
    final = output / "final"
    final.mkdir(exist_ok=True)
    (final / "adapter_config.json").write_text(json.dumps({"base": spec["base_model_path"]}))
    return {
        "trained_tokens": examples * TOKENS_PER_EXAMPLE * epochs,
        "output_dir": str(final),
        "metrics": {"train_loss": 2.0 / steps},
    }
