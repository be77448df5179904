"""Fine-tuning a causal LM on a normalized JSONL file: LoRA (PEFT) or full.

`run_training(spec, reporter)` is the only entry point the worker needs. It reports
progress through `reporter` (metrics of kind "step" after every step, of kind "epoch"
with validation figures after every epoch), writes one checkpoint per epoch under
output_dir/checkpoints/epoch-N and the result to output_dir/final, and raises
`TrainingError(code, message)` for every failure, or `TrainingCancelled`.

Resuming: beside each checkpoint, under output_dir/training-state/<checkpoint>, the
trainer keeps the optimizer state and its position (epoch, batch, step, tokens). A
spec with `resume_from` (a checkpoint folder) and `resume_state` (its state folder)
continues from there with the same data order, so an interrupted job loses at most the
steps after its last checkpoint. A reporter whose `should_hand_back()` turns true (the
worker is draining) makes the trainer save a checkpoint at the step it stands on and
raise `TrainingHandedBack`.
The loss is taken only on trained tokens (`formats.ExampleEncoder` labels), and the
same seed gives the same losses on CPU with the same thread count (CUDA kernels may
differ in the last bits from run to run).
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gpu_inference.formats import IGNORE_INDEX, ExampleEncoder, InvalidExample, read_examples
from gpu_inference.holdout import Holdout

logger = logging.getLogger(__name__)
METHODS = ("lora", "full")
# Copied beside every checkpoint, so each one loads for inference on its own.
TOKENIZER_FILE_PREFIXES = ("tokenizer", "special_tokens_map", "chat_template")


class TrainingError(Exception):
    """A failed job; `code` is stable and machine-readable, `message` is for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TrainingCancelled(Exception):
    """The reporter asked to stop; raised between two steps."""


class TrainingHandedBack(Exception):
    """The worker is stopping: a checkpoint at `step` was saved (and reported) at
    `checkpoint`, or None when this attempt had trained no step since its start."""

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        super().__init__(f"handed back at step {step}")
        self.step = step
        self.checkpoint = checkpoint


STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.pt"
# Optimizer states kept beside the checkpoints (AdamW's is twice the trained weights):
# the latest, and the one before in case the latest checkpoint's report was lost.
STATES_KEPT = 2


class Reporter(Protocol):
    def event(self, level: str, message: str, data: dict[str, Any] | None = None) -> None: ...
    def metrics(self, data: dict[str, Any]) -> None: ...
    def checkpoint(self, data: dict[str, Any]) -> None: ...
    def should_cancel(self) -> bool: ...


@dataclass(frozen=True)
class TrainingSpec:
    job_id: str
    base_model_path: Path
    training_file: Path
    validation_file: Path | None
    output_dir: Path
    method: str
    n_epochs: int
    batch_size: int
    learning_rate: float
    lora_r: int | None
    lora_alpha: float | None
    seed: int
    # Optional: the catalog's context length, when it is shorter than the model's.
    context_length: int | None = None
    # Without a validation file: the held-out split of the training file to validate on.
    holdout: Holdout | None = None
    # Optional: continue from this checkpoint and its training state.
    resume_from: Path | None = None
    resume_state: Path | None = None

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> TrainingSpec:
        try:
            hyper = spec["hyperparameters"]
            method = spec.get("method", "lora")
            if method not in METHODS:
                raise TrainingError("invalid_spec", f"method must be one of {', '.join(METHODS)}")
            parsed = cls(
                job_id=str(spec["job_id"]),
                base_model_path=Path(spec["base_model_path"]),
                training_file=Path(spec["training_file"]),
                validation_file=Path(spec["validation_file"])
                if spec.get("validation_file")
                else None,
                output_dir=Path(spec["output_dir"]),
                method=method,
                n_epochs=_positive(hyper, "n_epochs", int),
                batch_size=_positive(hyper, "batch_size", int),
                learning_rate=_positive(hyper, "learning_rate", float),
                lora_r=_positive(hyper, "lora_r", int) if method == "lora" else None,
                lora_alpha=_positive(hyper, "lora_alpha", float) if method == "lora" else None,
                seed=int(spec.get("seed", 0)),
                context_length=int(spec["context_length"]) if spec.get("context_length") else None,
                holdout=Holdout(
                    count=int(spec["holdout"]["count"]), seed=int(spec["holdout"]["seed"])
                )
                if spec.get("holdout") and not spec.get("validation_file")
                else None,
                resume_from=Path(spec["resume_from"]) if spec.get("resume_from") else None,
                resume_state=Path(spec["resume_state"]) if spec.get("resume_state") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TrainingError("invalid_spec", f"bad training spec: {exc!r}") from exc
        return parsed


def _positive(values: dict[str, Any], key: str, kind: type) -> Any:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise TrainingError(
            "invalid_hyperparameters", f"{key} must be a positive number, got {value!r}"
        )
    if kind is int and value != int(value):
        raise TrainingError("invalid_hyperparameters", f"{key} must be an integer, got {value!r}")
    return kind(value)


def run_training(spec: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """Train, save per-epoch checkpoints and the final adapter/model; see the module docstring."""
    try:
        return _Trainer(TrainingSpec.from_dict(spec), reporter).run()
    except (TrainingError, TrainingCancelled, TrainingHandedBack):
        raise
    except BaseException as exc:
        if _is_out_of_memory(exc):
            raise TrainingError(
                "out_of_memory", "the device ran out of memory; try a smaller batch_size"
            ) from exc
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise TrainingError("disk_full", "no space left to save the model") from exc
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not ours to rename
            raise
        logger.exception("training %s crashed", spec.get("job_id"))
        raise TrainingError("internal_error", internal_error_message(exc)) from exc


def internal_error_message(exc: BaseException) -> str:
    """What a tenant reads about a crash: the exception's class only. Its text may name
    server paths (site-packages, /tmp) no scrubber knows; the log has the detail."""
    return (
        f"The training stopped because of an internal error ({type(exc).__name__}); "
        "ask support to retry the job."
    )


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    # CPU allocator failures surface as plain RuntimeErrors.
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


Encoded = tuple[list[int], list[int]]


class _Trainer:
    def __init__(self, spec: TrainingSpec, reporter: Reporter) -> None:
        self.spec = spec
        self.reporter = reporter
        self.step = 0
        self.trained_tokens = 0
        self.train_seconds = 0.0
        # Where this attempt started: a hand-back before any new step saves nothing.
        self.first_step = 0
        self.resumed: dict[str, Any] | None = None
        self._resuming = False

    def run(self) -> dict[str, Any]:
        import torch

        from gpu_inference.runtime import configure_torch, pick_device

        spec = self.spec
        configure_torch()
        self.device = pick_device()
        train, validation = self._load_data()
        torch.manual_seed(spec.seed)
        self.steps_per_epoch = math.ceil(len(train) / spec.batch_size)
        self.total_steps = self.steps_per_epoch * spec.n_epochs
        state = self._read_state() if spec.resume_from else None
        self._resuming = state is not None
        model = self._load_model()
        self.pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=spec.learning_rate,
            weight_decay=0.0,
        )
        start_epoch, skip_batches = 1, 0
        if state is not None:
            start_epoch, skip_batches = self._resume(optimizer, state)
        shuffler = torch.Generator().manual_seed(spec.seed)
        self.reporter.event(
            "info",
            f"Training started: {len(train)} examples, {spec.n_epochs} epochs, "
            f"{self.total_steps} steps on {self.device}",
            {"examples": len(train), "total_steps": self.total_steps, "device": self.device},
        )
        if state is not None:
            self.reporter.event(
                "info",
                f"Resumed from the checkpoint at step {self.step} "
                f"(epoch {start_epoch}, {self.total_steps - self.step} steps left)",
                {"resumed_from_step": self.step, "epoch": start_epoch},
            )
        # A run resumed from its last epoch's checkpoint has nothing left to train.
        path, epoch_metrics = spec.resume_from, {"kind": "epoch", "step": self.step}
        for epoch in range(1, spec.n_epochs + 1):
            # Every epoch's order is drawn, also the ones a resumed run skips, so the
            # generator stands where an uninterrupted run would.
            order = torch.randperm(len(train), generator=shuffler).tolist()
            if epoch < start_epoch:
                continue
            skip, skip_batches = skip_batches, 0
            epoch_metrics = self._train_epoch(
                model, optimizer, [train[i] for i in order], epoch, skip=skip
            )
            if validation:
                epoch_metrics["valid_loss"], epoch_metrics["valid_token_accuracy"] = self._evaluate(
                    model, validation
                )
            self.reporter.metrics(epoch_metrics)
            path = self._checkpoint(
                model, optimizer, f"epoch-{epoch}", epoch=epoch, batches_done=0, sums=None
            )
            self.reporter.checkpoint(
                {"epoch": epoch, "step": self.step, "path": str(path), "metrics": epoch_metrics}
            )

        final_dir = spec.output_dir / "final"
        _link_copy(path, final_dir)
        # A finished run resumes nothing: its optimizer states would only take up room.
        shutil.rmtree(spec.output_dir / "training-state", ignore_errors=True)
        final_metrics = {
            **epoch_metrics,
            "tokens_per_second": round(self.trained_tokens / max(self.train_seconds, 1e-9), 1),
            "train_seconds": round(self.train_seconds, 2),
        }
        self.reporter.event(
            "info",
            f"Training finished: {self.trained_tokens} tokens trained",
            {"trained_tokens": self.trained_tokens},
        )
        return {
            "trained_tokens": self.trained_tokens,
            "output_dir": str(final_dir),
            "metrics": final_metrics,
        }

    def _load_data(self) -> tuple[list[Encoded], list[Encoded]]:
        spec = self.spec
        if not (spec.base_model_path / "config.json").is_file():
            raise TrainingError("base_model_not_found", "the base model is not installed")
        try:
            encoder = ExampleEncoder(spec.base_model_path, context_length=spec.context_length)
        except (FileNotFoundError, ValueError) as exc:
            raise TrainingError(
                "base_model_not_found", "the base model's tokenizer cannot be loaded"
            ) from exc
        train = self._load(spec.training_file, encoder, "training")
        validation = (
            self._load(spec.validation_file, encoder, "validation") if spec.validation_file else []
        )
        if spec.holdout is not None and spec.holdout.count < len(train):
            n_file = len(train)
            train, validation = spec.holdout.split(train)
            self.reporter.event(
                "info",
                f"Held out {len(validation)} of {n_file} training examples for validation "
                f"(seed {spec.holdout.seed}); they are not trained on",
                {"holdout": spec.holdout.as_dict(), "examples": n_file},
            )
        if not any(label != IGNORE_INDEX for _, labels in train for label in labels):
            raise TrainingError(
                "invalid_training_file",
                f"no example has trained tokens within the first {encoder.context_length} tokens",
            )
        return train, validation

    def _train_epoch(
        self, model: Any, optimizer: Any, examples: list[Encoded], epoch: int, *, skip: int = 0
    ) -> dict[str, Any]:
        import torch

        model.train()
        loss_total = correct_total = targets_total = 0.0
        if skip and self.resumed:  # the resumed epoch's sums so far
            loss_total, correct_total, targets_total = self.resumed["epoch_sums"]
        hand_back = getattr(self.reporter, "should_hand_back", None)
        for index, start in enumerate(range(0, len(examples), self.spec.batch_size), start=1):
            if index <= skip:
                continue  # trained before the interruption
            if self.reporter.should_cancel():
                raise TrainingCancelled(
                    f"job {self.spec.job_id} cancelled before step {self.step + 1}/{self.total_steps}"
                )
            if hand_back is not None and hand_back():
                raise self._hand_back(
                    model, optimizer, epoch, index - 1, (loss_total, correct_total, targets_total)
                )
            began = time.perf_counter()
            batch = self._collate(examples[start : start + self.spec.batch_size])
            loss_sum, correct, targets = self._forward(model, batch)
            if targets:
                (loss_sum / targets).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            self.train_seconds += time.perf_counter() - began
            self.step += 1
            self.trained_tokens += int(batch["attention_mask"].sum())
            loss = loss_sum.detach().item()
            loss_total += loss
            correct_total += correct
            targets_total += targets
            metrics = {
                "kind": "step",
                "step": self.step,
                "total_steps": self.total_steps,
                "epoch": round(epoch - 1 + index / self.steps_per_epoch, 4),
                # None when every token of the batch is masked (weight 0, truncated away).
                "train_loss": loss / targets if targets else None,
                "train_token_accuracy": correct / targets if targets else None,
                "tokens_per_second": round(self.trained_tokens / self.train_seconds, 1),
                "eta_seconds": round(
                    self.train_seconds / self.step * (self.total_steps - self.step), 1
                ),
            }
            self.reporter.metrics(metrics)  # the platform shows these as progress events
        return {
            "kind": "epoch",
            "epoch": epoch,
            "step": self.step,
            "train_loss_mean": loss_total / targets_total if targets_total else None,
            "train_token_accuracy_mean": correct_total / targets_total if targets_total else None,
        }

    def _load(self, path: Path, encoder: ExampleEncoder, kind: str) -> list[Encoded]:
        code = f"invalid_{kind}_file"
        try:
            examples = list(read_examples(path))
            encoded = [encoder.encode(example) for example in examples]
        except FileNotFoundError as exc:
            raise TrainingError(code, f"the {kind} file does not exist") from exc
        except UnicodeDecodeError as exc:
            raise TrainingError(code, f"the {kind} file is not UTF-8 text") from exc
        except InvalidExample as exc:
            raise TrainingError(code, f"{kind} file, {exc}") from exc
        if not encoded:
            raise TrainingError(code, f"the {kind} file has no examples")
        context = encoder.context_length
        # Only examples that fill the context can have been cut; count just those again.
        truncated = sum(
            len(ids) == context and encoder.count_tokens(example) > context
            for example, (ids, _) in zip(examples, encoded, strict=True)
        )
        if truncated:
            self.reporter.event(
                "warning",
                f"{truncated} {kind} examples are longer than the context of {context} tokens "
                "and were truncated",
                {"examples": truncated},
            )
        return encoded

    @property
    def resumed_weights(self) -> Path | None:
        return self.spec.resume_from if self._resuming else None

    def _load_model(self) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        resume = self.resumed_weights
        full_resume = resume is not None and self.spec.method == "full"
        try:
            model = AutoModelForCausalLM.from_pretrained(
                str(resume if full_resume else self.spec.base_model_path), dtype=torch.float32
            )
        except (OSError, ValueError) as exc:
            raise TrainingError("base_model_not_found", "the base model cannot be loaded") from exc
        if self.spec.method == "lora" and resume is not None:
            from peft import PeftModel

            from gpu_inference.runtime import peft_deprecation_silenced

            with peft_deprecation_silenced():
                model = PeftModel.from_pretrained(model, str(resume), is_trainable=True)
        elif self.spec.method == "lora":
            from peft import LoraConfig, get_peft_model

            from gpu_inference.runtime import peft_deprecation_silenced

            config = LoraConfig(
                r=self.spec.lora_r,
                lora_alpha=self.spec.lora_alpha,
                target_modules="all-linear",
                lora_dropout=0.0,
                bias="none",
                task_type="CAUSAL_LM",
            )
            with peft_deprecation_silenced():
                model = get_peft_model(model, config)
        return model.to(self.device)

    def _collate(self, examples: list[Encoded]) -> dict[str, Any]:
        import torch

        width = max(len(ids) for ids, _ in examples)
        input_ids = torch.full((len(examples), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, (ids, example_labels) in enumerate(examples):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(ids)] = torch.tensor(example_labels)
            attention_mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}

    def _forward(self, model: Any, batch: dict[str, Any]) -> tuple[Any, int, int]:
        """(summed loss over trained tokens, correctly predicted tokens, trained tokens)."""
        import torch
        import torch.nn.functional as F

        batch = {key: value.to(self.device) for key, value in batch.items()}
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.device == "cuda"):
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
        targets = batch["labels"][:, 1:]
        mask = targets != IGNORE_INDEX
        # Only trained positions enter the loss and the accuracy: selecting them first
        # spares a softmax and an argmax over every prompt and padding position.
        trained_logits = logits[:, :-1][mask].float()
        trained_targets = targets[mask]
        loss_sum = F.cross_entropy(trained_logits, trained_targets, reduction="sum")
        correct = int((trained_logits.argmax(-1) == trained_targets).sum())
        return loss_sum, correct, int(mask.sum())

    def _evaluate(self, model: Any, examples: list[Encoded]) -> tuple[float | None, float | None]:
        import torch

        model.eval()
        loss_total = correct_total = targets_total = 0.0
        with torch.no_grad():
            for start in range(0, len(examples), self.spec.batch_size):
                loss_sum, correct, targets = self._forward(
                    model, self._collate(examples[start : start + self.spec.batch_size])
                )
                loss_total += loss_sum.detach().item()
                correct_total += correct
                targets_total += targets
        model.train()
        if not targets_total:
            return None, None
        return loss_total / targets_total, correct_total / targets_total

    def _hand_back(
        self, model: Any, optimizer: Any, epoch: int, batches_done: int, sums: tuple
    ) -> TrainingHandedBack:
        """Save where training stands (between two steps) and say so."""
        if self.step == self.first_step:
            return TrainingHandedBack(self.step, None)  # nothing new to keep
        if batches_done == 0:  # at an epoch's end: its checkpoint was just saved
            path = self.spec.output_dir / "checkpoints" / f"epoch-{epoch - 1}"
            return TrainingHandedBack(self.step, path)
        path = self._checkpoint(
            model, optimizer, f"step-{self.step}", epoch=epoch, batches_done=batches_done, sums=sums
        )
        self.reporter.checkpoint(
            {"epoch": epoch - 1, "step": self.step, "path": str(path), "metrics": {}}
        )
        self.reporter.event(
            "info",
            f"The worker is stopping: saved a checkpoint at step {self.step}/{self.total_steps} "
            "to resume from",
            {"step": self.step},
        )
        return TrainingHandedBack(self.step, path)

    def _checkpoint(
        self,
        model: Any,
        optimizer: Any,
        name: str,
        *,
        epoch: int,
        batches_done: int,
        sums: tuple | None,
    ) -> Path:
        """The training state first, then the weights: a checkpoint that is there always
        has the state it resumes from."""
        import torch

        state_dir = self.spec.output_dir / "training-state" / name
        staging = state_dir.with_name(state_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        torch.save(optimizer.state_dict(), staging / OPTIMIZER_FILE)
        position = {
            # The epoch in progress and the batches of it done (0: it has not begun).
            "epoch": epoch + 1 if batches_done == 0 else epoch,
            "batches_done": batches_done,
            "step": self.step,
            "trained_tokens": self.trained_tokens,
            "train_seconds": self.train_seconds,
            "epoch_sums": list(sums) if sums else [0.0, 0.0, 0.0],
            "total_steps": self.total_steps,
            "batch_size": self.spec.batch_size,
        }
        (staging / STATE_FILE).write_text(json.dumps(position))
        shutil.rmtree(state_dir, ignore_errors=True)
        os.rename(staging, state_dir)
        _keep_latest_states(state_dir.parent, STATES_KEPT)
        return self._save(model, self.spec.output_dir / "checkpoints" / name)

    def _read_state(self) -> dict[str, Any] | None:
        """The resume state, checked against this run; None (start over, saying why)
        when it is missing or was saved for other data or hyperparameters."""
        spec = self.spec
        state = None
        if spec.resume_state is not None:
            try:
                state = json.loads((spec.resume_state / STATE_FILE).read_text())
            except (OSError, ValueError):
                state = None
        weights = ("adapter_config.json" if spec.method == "lora" else "config.json",)
        has_weights = all((spec.resume_from / name).is_file() for name in weights)
        reason = None
        if state is None or not has_weights:
            reason = "its saved state is missing"
        elif (state.get("total_steps"), state.get("batch_size")) != (
            self.total_steps,
            spec.batch_size,
        ):
            reason = "it was saved for other data or hyperparameters"
        if reason:
            self.reporter.event(
                "warning", f"Cannot resume from the checkpoint ({reason}); starting from step 0"
            )
            return None
        return state

    def _resume(self, optimizer: Any, state: dict[str, Any]) -> tuple[int, int]:
        import torch

        optimizer.load_state_dict(
            torch.load(
                self.spec.resume_state / OPTIMIZER_FILE, map_location=self.device, weights_only=True
            )
        )
        self.step = self.first_step = int(state["step"])
        self.trained_tokens = int(state["trained_tokens"])
        self.train_seconds = float(state["train_seconds"])
        self.resumed = state
        return int(state["epoch"]), int(state["batches_done"])

    def _save(self, model: Any, target: Path) -> Path:
        """Adapter (or full model) and tokenizer; written beside target then renamed, so never half there."""
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        model.save_pretrained(str(staging))
        for source in self.spec.base_model_path.iterdir():
            if source.is_file() and source.name.startswith(TOKENIZER_FILE_PREFIXES):
                shutil.copy2(source, staging / source.name)
        shutil.rmtree(target, ignore_errors=True)
        os.rename(staging, target)
        return target


def _link_copy(source: Path, target: Path) -> None:
    """Copy a folder by hard links where possible (a full model is not stored twice), atomically."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, copy_function=_link_or_copy)
    shutil.rmtree(target, ignore_errors=True)
    os.rename(staging, target)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copy2(source, target)


def _keep_latest_states(folder: Path, keep: int) -> None:
    states = sorted(
        (entry for entry in folder.iterdir() if entry.is_dir() and (entry / STATE_FILE).exists()),
        key=lambda entry: json.loads((entry / STATE_FILE).read_text())["step"],
    )
    for stale in states[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)
