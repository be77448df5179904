"""Celery task metrics and log context, for the platform's workers and GPU nodes alike.

No Django: `connect(app)` hooks Celery's signals. Every task is counted by name and
final state, timed, and its failures counted by exception type. A task whose first
argument names a fine-tuning job (a train spec, a report) runs with that job id in
its log lines.

Metrics use prometheus_client's multiprocess mode: each process (a prefork pool
child too) writes its own files in PROMETHEUS_MULTIPROC_DIR, which the web's /metrics
adds up on one host. A worker host without a web process serves them itself when
METRICS_PORT is set (bound to METRICS_BIND, 127.0.0.1 by default: an internal port,
never public unless an operator says so).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from gpu_inference import telemetry

logger = logging.getLogger(__name__)

# Seconds: validation and reports take milliseconds, training takes hours.
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, float("inf"))


def ensure_multiprocess_dir(default: Path) -> Path:
    """Point prometheus_client at its folder (PROMETHEUS_MULTIPROC_DIR when the environment
    sets it, as the platform's parent process does) before it is first imported."""
    folder = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or default)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return folder


class TaskMetrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.tasks = Counter(
            "tokenmill_celery_tasks",
            "Celery tasks that ended, by name and state.",
            ["task", "state"],
        )
        self.duration = Histogram(
            "tokenmill_celery_task_duration_seconds",
            "How long Celery tasks ran, by name.",
            ["task"],
            buckets=TASK_BUCKETS,
        )
        self.failures = Counter(
            "tokenmill_celery_task_failures",
            "Celery tasks that raised, by name and exception type.",
            ["task", "exception"],
        )


_metrics: TaskMetrics | None = None
_started: dict[str, float] = {}
_bound: dict[str, list] = {}


def metrics() -> TaskMetrics:
    global _metrics
    if _metrics is None:
        _metrics = TaskMetrics()
    return _metrics


def job_id_of(args) -> str:
    """The job a task works on, when its first argument says (a spec or a report)."""
    if args and isinstance(args[0], dict):
        found = args[0].get("job_id")
        return found if isinstance(found, str) else ""
    return ""


def _prerun(task_id: str, task, args=None, **kwargs) -> None:
    _started[task_id] = time.monotonic()
    job_id = job_id_of(args or ())
    if job_id:
        _bound[task_id] = telemetry.bind(job_id=job_id)


def _postrun(task_id: str, task, state: str | None = None, **kwargs) -> None:
    started = _started.pop(task_id, None)
    name = getattr(task, "name", "unknown")
    if started is not None:
        metrics().duration.labels(name).observe(time.monotonic() - started)
    metrics().tasks.labels(name, state or "UNKNOWN").inc()
    telemetry.unbind(_bound.pop(task_id, []))


def _failure(sender=None, exception=None, **kwargs) -> None:
    name = getattr(sender, "name", "unknown")
    metrics().failures.labels(name, type(exception).__name__).inc()


def _process_shutdown(pid: int | None = None, **kwargs) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid or os.getpid())


def _serve_metrics(**kwargs) -> None:
    port = os.environ.get("METRICS_PORT", "").strip()
    if not port:
        return
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    bind = os.environ.get("METRICS_BIND", "127.0.0.1").strip() or "127.0.0.1"
    start_http_server(int(port), addr=bind, registry=registry)
    logger.info("metrics on http://%s:%s/metrics", bind, port)


def connect() -> None:
    from celery import signals

    # Signals are global: one connection per process, whichever apps are loaded.
    for signal, receiver in (
        (signals.task_prerun, _prerun),
        (signals.task_postrun, _postrun),
        (signals.task_failure, _failure),
        (signals.worker_process_shutdown, _process_shutdown),
        (signals.worker_ready, _serve_metrics),
    ):
        signal.connect(receiver, weak=False, dispatch_uid=f"tokenmill.{receiver.__name__}")
