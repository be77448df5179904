"""What the platform and GPU workers say to each other, with no Django on either side.

The platform sends a self-contained job spec on the `gpu` queue; a GPU worker answers
with reports on the `control` queue. Stopping is a marker in the artifact store that
the worker checks between steps. Both sides import this module (and only this) to
agree on task names, queues, marker keys and the shapes of specs and reports.

Fencing: every dispatch of a job runs one numbered attempt. The platform accepts
reports only from the attempt it dispatched last, and a worker whose attempt is no
longer the one named by the attempt marker stands down.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NotRequired, TypedDict

# Task names: tasks are sent by name, so a sender never imports the task's module.
TASK_PREPARE = "finetuning.prepare"
TASK_DISPATCH = "finetuning.dispatch"
TASK_TRAIN = "finetuning.train"
TASK_REPORT = "finetuning.report"
TASK_REAP = "finetuning.reap"

GPU_QUEUE = "gpu"
CONTROL_QUEUE = "control"
# Every queue of the fleet, each with its own direct exchange and routing key: the
# platform's Celery app and the GPU nodes' declare them alike.
QUEUES = ("default", GPU_QUEUE, CONTROL_QUEUE, "batch")


class ReportKind(StrEnum):
    STARTED = "started"
    HEARTBEAT = "heartbeat"
    EVENT = "event"
    METRICS = "metrics"
    CHECKPOINT = "checkpoint"
    OUTCOME = "outcome"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # The worker was asked to stop (SIGTERM: a drain before a deploy or a scale-down): it
    # saved a checkpoint where it stood and gives the job back, to be resumed from it.
    HANDED_BACK = "handed_back"


def job_prefix(job_id: str) -> str:
    """Where everything a job writes to the artifact store lives."""
    return f"jobs/{job_id}"


def attempt_prefix(job_id: str, attempt: int) -> str:
    """One attempt's output (checkpoints, the final adapter): deleted once superseded."""
    return f"{job_prefix(job_id)}/attempt-{attempt}"


def attempt_marker_key(job_id: str) -> str:
    """Holds the number of the job's current attempt; any other attempt stands down."""
    return f"{job_prefix(job_id)}/control/attempt"


def cancel_marker_key(job_id: str, attempt: int) -> str:
    """Asks one attempt to stop; a later attempt has its own, so an old cancel never stops it."""
    return f"{job_prefix(job_id)}/control/attempt-{attempt}/cancel"


def claim_marker_key(job_id: str, attempt: int) -> str:
    """Created exclusively by the worker that runs the attempt: a second delivery of the
    same attempt finds it and stands down."""
    return f"{job_prefix(job_id)}/control/attempt-{attempt}/claim"


def outcome_key(job_id: str, attempt: int) -> str:
    """The attempt's outcome report, written before it is sent: the reaper records it
    from here when the send was lost, instead of retraining a job that ended."""
    return f"{attempt_prefix(job_id, attempt)}/outcome.json"


def training_state_key(checkpoint_key: str) -> str:
    """Where the trainer keeps what resuming from a checkpoint needs besides its weights
    (optimizer state, the position in the data): beside the checkpoints, not inside one,
    so a checkpoint made into a model carries none of it to the model servers."""
    parent, _, name = checkpoint_key.rstrip("/").rpartition("/")
    folder = parent.rpartition("/")[0]
    return f"{folder}/training-state/{name}" if folder else f"training-state/{name}"


def carried_key(checkpoint_key: str, job_id: str, attempt: int) -> str:
    """The key a checkpoint of an earlier attempt has once carried into `attempt`."""
    prefix = job_prefix(job_id) + "/attempt-"
    if not checkpoint_key.startswith(prefix):
        raise ValueError(f"{checkpoint_key!r} is not a checkpoint of {job_id}")
    rest = checkpoint_key[len(prefix) :].partition("/")[2]
    return f"{attempt_prefix(job_id, attempt)}/{rest}"


class Resume(TypedDict):
    """An attempt that continues an interrupted one: the earlier attempt's checkpoints,
    oldest first, are carried into this attempt's folder, and training continues from
    the last of them (its weights, optimizer state and position in the data)."""

    checkpoints: list[str]
    step: int


class SpecHyperparameters(TypedDict):
    n_epochs: int
    batch_size: int
    learning_rate: float
    lora_r: int | None
    lora_alpha: float | None


class JobSpec(TypedDict):
    """What the `gpu` queue's train task receives. Paths are artifact-store keys and a
    folder under the model root: the worker resolves them against its own roots."""

    job_id: str
    attempt: int
    base_model: str
    base_model_path: str
    training_file: str
    validation_file: str | None
    # Without a validation file: {"count", "seed"} of the held-out split of the training
    # file (gpu_inference.holdout), validated on and never trained on; else None.
    holdout: dict[str, int] | None
    output_prefix: str
    method: str
    hyperparameters: SpecHyperparameters
    seed: int
    context_length: int | None
    # Absent or None: the attempt starts from step 0.
    resume: NotRequired[Resume | None]


class Report(TypedDict):
    """One message on the `control` queue. `seq` numbers the reports of one attempt from 1,
    so (job_id, attempt, seq) names a report exactly once: a redelivery is recognised."""

    job_id: str
    attempt: int
    seq: int
    kind: str
    at: float
    payload: dict[str, Any]
