"""Runs one attempt of a job spec on a GPU worker.

Touches no database and no Django: only the artifact store (datasets in, checkpoints
and the adapter out) and a `send` callable that puts reports on the control queue.
The trainer works on real files: the datasets are copied from the store to this host,
it writes into a local work folder, and each checkpoint and the final model are
uploaded to the store before they are reported. Everything it reports is stripped of
the worker's own folders (work, store copies, model root): tenants see store keys and
model names, never server paths.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import itertools
import json
import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpu_inference import protocol, telemetry
from gpu_inference.artifacts import ArtifactStore
from gpu_inference.training import (
    TrainingCancelled,
    TrainingError,
    TrainingHandedBack,
    internal_error_message,
)

logger = logging.getLogger(__name__)

Send = Callable[[protocol.Report], None]


class PathScrubber:
    """Removes the worker's root folders from text a tenant may read."""

    def __init__(self, *roots: Path | str):
        prefixes: set[str] = set()
        for root in roots:
            for form in (Path(root), Path(root).resolve()):
                prefixes.add(str(form).rstrip("/") + "/")
        self.prefixes = sorted(prefixes, key=len, reverse=True)  # longest first
        self.aliases: dict[str, str] = {}

    def alias(self, path: Path | str, name: str) -> None:
        """Show the local file `path` as `name` (a store key): a copy has the key's name."""
        for form in (Path(path), Path(path).resolve()):
            self.aliases[str(form)] = name

    def text(self, value: str) -> str:
        for path in sorted(self.aliases, key=len, reverse=True):
            value = value.replace(path, self.aliases[path])
        for prefix in self.prefixes:
            value = value.replace(prefix, "")
            value = value.replace(prefix.rstrip("/"), "")
        return value

    def clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.clean(item) for item in value]
        return value


class ControlReporter:
    """The trainer's reporter: each call becomes one numbered report for the control queue.

    Progress reports (events, metrics, checkpoints, heartbeats) are best effort: a broker
    blip is logged and training carries on, since failing a long run for a lost metric
    would be worse. Checkpoints that could not be sent are sent again with the next
    report and before the outcome. The outcome itself goes through `send_outcome`.
    """

    def __init__(
        self,
        spec: protocol.JobSpec,
        store: ArtifactStore,
        send: Send,
        scrubber: PathScrubber,
        draining: Callable[[], bool] = lambda: False,
        *,
        work_dir: Path,
    ):
        self.draining = draining
        self.job_id = spec["job_id"]
        self.attempt = spec["attempt"]
        self.store = store
        self.output_prefix = spec["output_prefix"]
        self.work_dir = Path(work_dir)
        self.scrubber = scrubber
        self._send = send
        self._seq = itertools.count(1)
        self._lock = threading.Lock()  # the heartbeat thread reports too
        self._stopping = False
        self._unsent_checkpoints: list[protocol.Report] = []

    def report(self, kind: str, payload: dict) -> protocol.Report:
        with self._lock:
            seq = next(self._seq)
        return {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "seq": seq,
            "kind": kind,
            "at": time.time(),
            "payload": self.scrubber.clean(payload),
        }

    def send(self, kind: str, payload: dict) -> bool:
        """Send one report; False (logged) when the broker could not take it."""
        self.resend_checkpoints()
        report = self.report(kind, payload)
        if self._try_send(report):
            return True
        if kind == protocol.ReportKind.CHECKPOINT:
            with self._lock:
                self._unsent_checkpoints.append(report)
        return False

    def resend_checkpoints(self) -> bool:
        """Send the checkpoints a broker blip held back; True when none is left."""
        with self._lock:
            waiting, self._unsent_checkpoints = self._unsent_checkpoints, []
        failed = [report for report in waiting if not self._try_send(report)]
        with self._lock:
            self._unsent_checkpoints[:0] = failed
            return not self._unsent_checkpoints

    def _try_send(self, report: protocol.Report) -> bool:
        try:
            self._send(report)
        except Exception:
            logger.exception(
                "could not send the %s report of %s attempt %s; training goes on",
                report["kind"],
                self.job_id,
                self.attempt,
            )
            return False
        return True

    def send_outcome(
        self, outcome: dict, *, retry_seconds: float, sleep: Callable[[float], None]
    ) -> bool:
        """Write the outcome to the store first (the reaper's fallback), then send it,
        retrying with backoff for `retry_seconds`: after a long run, the outcome is the
        one report that must not be lost to a broker blip."""
        report = self.report(protocol.ReportKind.OUTCOME, outcome)
        self.store.write_bytes(
            protocol.outcome_key(self.job_id, self.attempt), json.dumps(report).encode()
        )
        deadline, delay = time.monotonic() + retry_seconds, 1.0
        while True:
            if self.resend_checkpoints() and self._try_send(report):
                return True
            if time.monotonic() + delay > deadline:
                logger.error(
                    "gave up sending the outcome of %s attempt %s; the reaper reads it from %s",
                    self.job_id,
                    self.attempt,
                    protocol.outcome_key(self.job_id, self.attempt),
                )
                return False
            sleep(delay)
            delay = min(delay * 2, 30.0)

    def event(self, level: str, message: str, data: dict | None = None) -> None:
        self.send(protocol.ReportKind.EVENT, {"level": level, "message": message, "data": data})

    def metrics(self, data: dict) -> None:
        self.send(protocol.ReportKind.METRICS, {"data": data})

    def checkpoint(self, data: dict) -> None:
        path = Path(data["path"])
        # The training state first, as the trainer saved it: a checkpoint in the store
        # always has what resuming from it needs.
        state = self.work_dir / "training-state" / path.name
        if state.is_dir():
            self.store.put_folder(protocol.training_state_key(self.store_key(path)), state)
        key = self.publish(path)
        self.send(protocol.ReportKind.CHECKPOINT, {**data, "path": key})

    def store_key(self, path: str | Path) -> str:
        """The store key of a folder the trainer wrote in the work folder."""
        relative = Path(path).resolve().relative_to(self.work_dir.resolve()).as_posix()
        return self.output_prefix if relative == "." else f"{self.output_prefix}/{relative}"

    def publish(self, path: str | Path) -> str:
        """Upload a folder the trainer wrote (a checkpoint, the final model); its key."""
        key = self.store_key(path)
        self.store.put_folder(key, Path(path))
        return key

    def claim(self) -> bool:
        """Create this attempt's claim marker, exclusively: False if a worker has it."""
        marker = protocol.claim_marker_key(self.job_id, self.attempt)
        return self.store.create_exclusive(marker, socket.gethostname().encode())

    def should_hand_back(self) -> bool:
        """True once the worker is shutting down (SIGTERM): the trainer saves a checkpoint
        where it stands and the job goes back to the queue, to resume from it."""
        return self.draining()

    def should_cancel(self) -> bool:
        """True when this attempt was cancelled or superseded by a newer one."""
        if self._stopping:
            return True
        if self.store.exists(protocol.cancel_marker_key(self.job_id, self.attempt)):
            self._stopping = True
        else:
            try:
                current = self.store.read_bytes(protocol.attempt_marker_key(self.job_id))
            except FileNotFoundError:
                current = str(self.attempt).encode()
            self._stopping = current.decode().strip() != str(self.attempt)
        return self._stopping


class Heartbeat(threading.Thread):
    def __init__(self, reporter: ControlReporter, every: float):
        super().__init__(daemon=True, name=f"heartbeat-{reporter.job_id}")
        self.reporter, self.every = reporter, every
        self.stopped = threading.Event()

    def run(self) -> None:
        telemetry.bind(job_id=self.reporter.job_id)  # a thread starts with no context
        while not self.stopped.wait(self.every):
            self.reporter.send(protocol.ReportKind.HEARTBEAT, {})  # logs a broker blip


def carry_checkpoints(spec: protocol.JobSpec, store: ArtifactStore) -> dict[str, str]:
    """Copy the interrupted attempt's checkpoints (and the last one's training state) into
    this attempt's folder, before the platform hears that this attempt started (it then
    deletes the earlier attempts' folders). Returns {earlier key: key here}; empty when
    there is nothing to resume from or it is gone (the attempt then starts at step 0)."""
    resume = spec.get("resume")
    if not resume or not resume["checkpoints"]:
        return {}
    job_id, attempt = spec["job_id"], spec["attempt"]
    carried: dict[str, str] = {}
    try:
        for key in resume["checkpoints"]:
            carried[key] = protocol.carried_key(key, job_id, attempt)
            store.copy_tree(key, carried[key])
        last = resume["checkpoints"][-1]
        store.copy_tree(
            protocol.training_state_key(last), protocol.training_state_key(carried[last])
        )
    except (FileNotFoundError, ValueError):
        logger.warning(
            "job %s attempt %s cannot resume from %s; it starts from step 0",
            job_id,
            attempt,
            resume["checkpoints"][-1],
            exc_info=True,
        )
        for key in carried.values():
            store.delete(key)
        return {}
    return carried


def fetch_resume_point(
    store: ArtifactStore, carried: dict[str, str], work_dir: Path
) -> tuple[Path, Path] | None:
    """Bring the last carried checkpoint and its training state into the work folder,
    where the trainer would have written them: (checkpoint folder, state folder)."""
    if not carried:
        return None
    key = list(carried.values())[-1]
    name = key.rstrip("/").rpartition("/")[2]
    checkpoint = work_dir / "checkpoints" / name
    state = work_dir / "training-state" / name
    store.fetch_folder(key, checkpoint)
    store.fetch_folder(protocol.training_state_key(key), state)
    return checkpoint, state


def training_spec(
    spec: protocol.JobSpec,
    *,
    model_root: Path,
    training_file: Path,
    validation_file: Path | None,
    output_dir: Path,
    resume: tuple[Path, Path] | None = None,
) -> dict:
    """The trainer's spec: the job spec with this worker's local files and folders."""
    return {
        "resume_from": str(resume[0]) if resume else None,
        "resume_state": str(resume[1]) if resume else None,
        "job_id": spec["job_id"],
        "base_model_path": str(Path(model_root) / spec["base_model_path"]),
        "training_file": str(training_file),
        "validation_file": str(validation_file) if validation_file else None,
        "output_dir": str(output_dir),
        "method": spec["method"],
        "hyperparameters": spec["hyperparameters"],
        "seed": spec["seed"],
        "context_length": spec.get("context_length"),
        "holdout": spec.get("holdout"),
    }


def _dataset_copy(
    local: contextlib.ExitStack, store: ArtifactStore, scrubber: PathScrubber, key: str, kind: str
) -> Path:
    """A local copy of a dataset for the attempt (removed with `local`), reported under its
    key; refused as the trainer would refuse it when the file is gone."""
    try:
        path = local.enter_context(store.local_copy(key))
    except FileNotFoundError as error:
        raise TrainingError(f"invalid_{kind}_file", f"the {kind} file does not exist") from error
    scrubber.alias(path, key)
    return path


def load_trainer(dotted: str) -> Callable[[dict, Any], dict]:
    """`package.module.function` (or `package.module:function`) -> the function."""
    module, _, name = dotted.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module), name)


# How long a worker keeps trying to send an outcome before it leaves it to the reaper
# (which reads the copy in the store once the worker's heartbeats stop).
OUTCOME_RETRY_SECONDS = 600.0

# Redis hands an unacknowledged message to another worker after its visibility
# timeout, and training is acknowledged late, so one long attempt can be delivered
# twice. The worker claims the attempt with an exclusive marker in the store before it
# starts, and a second delivery stands down. (Acknowledging early would lose a message
# a worker died holding before it started, leaving only the dispatch timeout; the claim
# keeps late acknowledgement and makes any duplicate delivery harmless.)
ALREADY_CLAIMED = "already_claimed"

# Where the trainer writes before its folders are uploaded, unless the worker names one.
DEFAULT_WORK_ROOT = Path(tempfile.gettempdir()) / "tokenmill-training"


def _in_job_log_context(run: Callable[..., str]) -> Callable[..., str]:
    """Every log line of the run, the trainer's included, carries the job's id."""

    @functools.wraps(run)
    def wrapper(spec: protocol.JobSpec, **options) -> str:
        with telemetry.log_context(job_id=spec["job_id"]):
            return run(spec, **options)

    return wrapper


@_in_job_log_context
def run_job(
    spec: protocol.JobSpec,
    *,
    store: ArtifactStore,
    model_root: Path,
    trainer: str,
    send: Send,
    heartbeat_seconds: float,
    work_root: Path = DEFAULT_WORK_ROOT,
    outcome_retry_seconds: float = OUTCOME_RETRY_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    draining: Callable[[], bool] = lambda: False,
) -> str:
    """Train one attempt of a job and report how it ended. Returns the outcome."""
    work_root = Path(work_root)
    work_dir = work_root / spec["job_id"] / f"attempt-{spec['attempt']}"
    scrubber = PathScrubber(*store.host_folders(), work_root, model_root)
    reporter = ControlReporter(spec, store, send, scrubber, draining, work_dir=work_dir)

    def finish(outcome: dict) -> str:
        reporter.send_outcome(outcome, retry_seconds=outcome_retry_seconds, sleep=sleep)
        return outcome["status"]

    if not reporter.claim():
        logger.warning(
            "job %s attempt %s was delivered again; the worker that claimed it runs it",
            spec["job_id"],
            spec["attempt"],
        )
        return ALREADY_CLAIMED
    if reporter.should_cancel():
        # Cancelled (or superseded) while it waited in the queue: never start.
        return finish({"status": protocol.Outcome.CANCELLED})
    carried = carry_checkpoints(spec, store)
    reporter.send(protocol.ReportKind.STARTED, {"worker": socket.gethostname(), "carried": carried})
    heartbeat = Heartbeat(reporter, heartbeat_seconds)
    heartbeat.start()
    try:
        with contextlib.ExitStack() as local:
            shutil.rmtree(work_dir, ignore_errors=True)
            work_dir.mkdir(parents=True)
            local.callback(shutil.rmtree, work_dir, ignore_errors=True)
            validation = spec["validation_file"]
            trainer_spec = training_spec(
                spec,
                model_root=model_root,
                training_file=_dataset_copy(
                    local, store, scrubber, spec["training_file"], "training"
                ),
                validation_file=_dataset_copy(local, store, scrubber, validation, "validation")
                if validation
                else None,
                output_dir=work_dir,
                resume=fetch_resume_point(store, carried, work_dir),
            )
            result = load_trainer(trainer)(trainer_spec, reporter)
            output = reporter.publish(result["output_dir"])
            # A finished run resumes nothing: its optimizer states would only take up room.
            store.delete(f"{spec['output_prefix']}/training-state")
    except TrainingCancelled:
        outcome = {"status": protocol.Outcome.CANCELLED}
    except TrainingHandedBack as handed_back:
        checkpoint = handed_back.checkpoint
        outcome = {
            "status": protocol.Outcome.HANDED_BACK,
            "step": handed_back.step,
            "checkpoint": reporter.store_key(checkpoint) if checkpoint else None,
        }
    except TrainingError as error:
        outcome = {"status": protocol.Outcome.FAILED, "code": error.code, "message": error.message}
    except Exception as error:
        logger.exception("job %s attempt %s crashed", spec["job_id"], spec["attempt"])
        outcome = {
            "status": protocol.Outcome.FAILED,
            "code": "internal_error",
            "message": internal_error_message(error),  # the detail is in the log above
        }
    else:
        outcome = {
            "status": protocol.Outcome.SUCCEEDED,
            "trained_tokens": int(result["trained_tokens"]),
            "output": output,
            "metrics": result.get("metrics") or {},
        }
    finally:
        heartbeat.stopped.set()
    return finish(outcome)
