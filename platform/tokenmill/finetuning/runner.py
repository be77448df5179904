"""Runs a job spec on a GPU worker. Touches no database: only the artifact store
(datasets in, checkpoints and the adapter out) and the broker (reports back)."""

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from gpu_inference.artifacts import ArtifactStore
from gpu_inference.training import TrainingCancelled, TrainingError
from tokenmill.finetuning import control

logger = logging.getLogger(__name__)


class ControlReporter:
    """The trainer's reporter: each call becomes a report task on the control queue."""

    def __init__(
        self, spec: dict, store: ArtifactStore, send: Callable[..., None] = control.send_report
    ):
        self.job_id = spec["job_id"]
        self.attempt = spec["attempt"]
        self.store = store
        self._send = send
        self._last_cancel_check = 0.0
        self._stopping = False

    def send(self, kind: str, payload: dict) -> None:
        self._send(self.job_id, self.attempt, kind, {**payload, "at": time.time()})

    def event(self, level: str, message: str, data: dict | None = None) -> None:
        self.send("event", {"level": level, "message": message, "data": data})

    def metrics(self, data: dict) -> None:
        self.send("metrics", {"data": data})

    def checkpoint(self, data: dict) -> None:
        path = Path(data["path"])
        key = str(path.resolve().relative_to(self.store.root.resolve()))
        self.send("checkpoint", {**data, "path": key})

    def should_cancel(self) -> bool:
        """True when the job was cancelled or this attempt was superseded by a requeue."""
        if self._stopping:
            return True
        if self.store.exists(control.cancel_marker_key(self.job_id)):
            self._stopping = True
        else:
            marker = self.store.path(control.attempt_marker_key(self.job_id))
            current = marker.read_text().strip() if marker.exists() else str(self.attempt)
            self._stopping = current != str(self.attempt)
        return self._stopping


class Heartbeat(threading.Thread):
    def __init__(self, reporter: ControlReporter, every: float):
        super().__init__(daemon=True, name=f"heartbeat-{reporter.job_id}")
        self.reporter, self.every = reporter, every
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                self.reporter.send("heartbeat", {})
            except Exception:  # a broker hiccup must not kill the training thread
                logger.exception("heartbeat for %s failed", self.reporter.job_id)


def training_spec(spec: dict, store: ArtifactStore) -> dict[str, Any]:
    return {
        "job_id": spec["job_id"],
        "base_model_path": str(Path(settings.MODEL_ROOT) / spec["base_model_path"]),
        "training_file": str(store.path(spec["training_file"])),
        "validation_file": str(store.path(spec["validation_file"]))
        if spec["validation_file"]
        else None,
        "output_dir": str(store.path(spec["output_prefix"])),
        "method": spec["method"],
        "hyperparameters": spec["hyperparameters"],
        "seed": spec["seed"],
        "context_length": spec.get("context_length"),
    }


def run_job(spec: dict, *, store: ArtifactStore | None = None) -> str:
    """Train one attempt of a job and report how it ended. Returns the outcome."""
    store = store or ArtifactStore(settings.ARTIFACT_ROOT)
    reporter = ControlReporter(spec, store)
    if reporter.should_cancel():
        # Cancelled (or superseded) while it waited in the queue: never start.
        reporter.send("outcome", {"status": "cancelled"})
        return "cancelled"
    reporter.send("started", {"worker": socket.gethostname()})
    heartbeat = Heartbeat(reporter, settings.JOB_HEARTBEAT_SECONDS)
    heartbeat.start()
    try:
        trainer = import_string(settings.TRAINER)
        result = trainer(training_spec(spec, store), reporter)
    except TrainingCancelled:
        outcome = {"status": "cancelled"}
    except TrainingError as error:
        outcome = {"status": "failed", "code": error.code, "message": error.message}
    except Exception as error:
        logger.exception("job %s attempt %s crashed", spec["job_id"], spec["attempt"])
        outcome = {
            "status": "failed",
            "code": "internal_error",
            "message": f"{type(error).__name__}: {error}",
        }
    else:
        output = Path(result["output_dir"]).resolve().relative_to(store.root.resolve())
        outcome = {
            "status": "succeeded",
            "trained_tokens": int(result["trained_tokens"]),
            "output": str(output),
            "metrics": result.get("metrics") or {},
        }
    finally:
        heartbeat.stopped.set()
    reporter.send("outcome", outcome)
    return outcome["status"]
