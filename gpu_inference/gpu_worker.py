"""The Celery app of a GPU node: `celery -A gpu_inference.gpu_worker worker -Q gpu -c 1`.

It imports no Django and no platform code: a GPU node needs only the broker and the
artifact store. Everything is read from the environment, under the same names and
defaults as the platform's settings (tokenmill/settings.py), so one environment file
serves both sides. It runs the train task (protocol.TASK_TRAIN) and sends reports by
name (protocol.TASK_REPORT) to the control queue, where the platform's control worker
records them.

Draining: SIGTERM is Celery's warm shutdown (no new task is taken, the running one is
waited for). A training task would hold the node for hours, so the worker also raises
its drain flag, and the trainer, between two steps, saves a checkpoint where it stands
and hands the job back: the platform queues it again at once, and the next worker
resumes from that checkpoint.

Like every platform worker it also consumes its own probe queue (`probe.<node>`) and
answers `workers.ping`, so `runplatform`'s supervisor and liveness probes see that it
still takes tasks, exactly as for the other workers.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import threading
import time
from pathlib import Path

from celery import Celery
from celery.exceptions import Reject
from celery.signals import celeryd_after_setup, worker_shutting_down
from kombu import Exchange, Queue

from gpu_inference import protocol, redis_roles, task_metrics, telemetry, worker
from gpu_inference.artifacts import ArtifactStoreConfigError, open_store, parse_store_url
from gpu_inference.broker import filesystem_transport_options, use_atomic_filesystem_transport

ROOT = Path(__file__).resolve().parents[1]
QUEUES = protocol.QUEUES
PING_TASK = "workers.ping"
PROBE_PREFIX = "probe."  # as workers/probes.py names a worker's probe queue


class GpuWorkerConfigError(ValueError):
    """A bad environment value; the message names the variable."""


# Every variable this module has read, as tokenmill.env records the platform's: the
# deploy manifests' test checks that each variable a GPU node is given is one it reads.
_READ: dict[str, None] = {}


def variables_read() -> list[str]:
    return list(_READ)


def env_str(name: str, default: str = "") -> str:
    _READ.setdefault(name, None)
    return os.environ.get(name, default).strip()


def env_int(name: str, default: int, *, minimum: int) -> int:
    raw = env_str(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise GpuWorkerConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise GpuWorkerConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_path(name: str, default: Path) -> Path:
    raw = env_str(name)
    if not raw:
        return default
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise GpuWorkerConfigError(f"{name} must be an absolute path, got {raw!r}")
    return path.resolve()


def env_redis_url(name: str) -> str:
    value = env_str(name)
    if value and not value.startswith(("redis://", "rediss://")):
        raise GpuWorkerConfigError(f"{name} must start with one of redis://, rediss://")
    return value


def redis_role_url(base_url: str, role: str, *, variable: str = "REDIS_URL") -> str:
    """The platform's rule (gpu_inference/redis_roles.py), refused as a worker config error."""
    try:
        return redis_roles.redis_role_url(base_url, role, variable=variable)
    except redis_roles.RedisRoleError as error:
        raise GpuWorkerConfigError(str(error)) from None


def redis_role(variable: str, role: str) -> str:
    own = env_redis_url(variable)
    base = env_redis_url("REDIS_URL")
    return own or (redis_role_url(base, role) if base else "")


class GpuSettings:
    """What a GPU node reads from its environment, named as in tokenmill/settings.py."""

    def __init__(self) -> None:
        var_dir = env_path("TOKENMILL_VAR_DIR", ROOT / "var")
        self.drain_folder = var_dir / "drain"
        self.metrics_dir = env_path("METRICS_DIR", var_dir / "metrics")
        try:
            self.log_format = telemetry.log_format()
        except ValueError as error:
            raise GpuWorkerConfigError(str(error)) from None
        self.broker_url = redis_role("CELERY_BROKER_URL", "broker") or "filesystem://"
        self.broker_folder = var_dir / "broker"
        self.result_backend = redis_role("CELERY_RESULT_BACKEND", "results") or (
            f"file://{var_dir / 'celery-results'}"
        )
        self.artifact_store_url = env_str("ARTIFACT_STORE_URL") or str(var_dir / "artifacts")
        try:
            parse_store_url(self.artifact_store_url)
        except ArtifactStoreConfigError as error:
            raise GpuWorkerConfigError(str(error)) from None
        self.artifact_cache_dir = env_path("ARTIFACT_CACHE_DIR", var_dir / "artifact-cache")
        self.model_root = env_path("MODEL_ROOT", var_dir / "models")
        self.trainer = env_str("TRAINER", "gpu_inference.training:run_training").replace(":", ".")
        self.heartbeat_seconds = env_int("JOB_HEARTBEAT_SECONDS", 5, minimum=1)
        self.outcome_retry_seconds = env_int("JOB_OUTCOME_RETRY_SECONDS", 600, minimum=1)
        # TOKENMILL_TORCH_THREADS is read where torch is set up (gpu_inference/runtime.py).


def broker_transport_options(config: GpuSettings) -> dict:
    """As workers/celery.py sets them, so both sides poll the same folders alike."""
    if config.broker_url.startswith("filesystem://"):
        return filesystem_transport_options(config.broker_folder)
    return {"visibility_timeout": 3600, "unacked_restore_interval": 30}


# Set in the worker's main process when it starts a warm shutdown; the solo pool trains
# in that process. A prefork pool's child sees the drain flag file instead.
_draining = threading.Event()


def drain_flag(config: GpuSettings, node: str) -> Path:
    """The file whose presence tells the training task that its worker is shutting down."""
    return config.drain_folder / re.sub(r"[^\w.-]", "-", node)


def draining_check(config: GpuSettings, node: str):
    flag = drain_flag(config, node)
    return lambda: _draining.is_set() or flag.exists()


def probe_queue(node: str) -> Queue:
    # The same name workers/probes.py sends to: brokers take no "@" in a queue name.
    name = PROBE_PREFIX + re.sub(r"[^\w.-]", "-", node)
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def send_report(report: protocol.Report, *, celery_app: Celery | None = None) -> None:
    """By name, to the control queue, as the platform's control.send_report sends it:
    the control worker's finetuning.report task records it."""
    (celery_app or app).send_task(
        protocol.TASK_REPORT,
        args=(report,),
        queue=protocol.CONTROL_QUEUE,
        routing_key=protocol.CONTROL_QUEUE,
    )


def create_app(config: GpuSettings) -> Celery:
    use_atomic_filesystem_transport()
    # Before prometheus_client is imported: it picks multiprocess mode at import.
    task_metrics.ensure_multiprocess_dir(config.metrics_dir)
    task_metrics.connect()
    telemetry.connect_celery_logging()
    if config.result_backend.startswith("file://"):
        Path(config.result_backend.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    # No fix-ups: with DJANGO_SETTINGS_MODULE inherited (runplatform's children have it),
    # Celery's Django fix-up would set Django up, and with it the database settings.
    celery_app = Celery("tokenmill-gpu", fixups=[])
    celery_app.conf.update(
        broker_url=config.broker_url,
        broker_transport_options=broker_transport_options(config),
        broker_connection_retry_on_startup=True,
        result_backend=config.result_backend,
        result_expires=3600,
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES
        ],
        task_default_queue=protocol.GPU_QUEUE,
        task_default_exchange=protocol.GPU_QUEUE,
        task_default_routing_key=protocol.GPU_QUEUE,
        task_routes={
            protocol.TASK_TRAIN: {"queue": protocol.GPU_QUEUE, "routing_key": protocol.GPU_QUEUE},
            protocol.TASK_REPORT: {
                "queue": protocol.CONTROL_QUEUE,
                "routing_key": protocol.CONTROL_QUEUE,
            },
        },
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        timezone="UTC",
        enable_utc=True,
        worker_hijack_root_logger=False,
    )

    # A worker process that dies mid-job must not get the same attempt back from the
    # broker: the platform's reaper requeues it as a new attempt. A second delivery of
    # one attempt (Redis' visibility timeout) stands down on the attempt's claim marker.
    # shared=False: these belong to this app only, never to an app loaded beside it.
    @celery_app.task(
        name=protocol.TASK_TRAIN,
        acks_late=True,
        reject_on_worker_lost=False,
        shared=False,
        bind=True,
    )
    def train(task, spec: protocol.JobSpec) -> str:
        draining = draining_check(config, task.request.hostname or socket.gethostname())
        if draining():
            # A worker shutting down takes no new job, even one delivered in its last
            # moments (a job it just handed back, requeued at once): back to the queue.
            raise Reject("the worker is shutting down", requeue=True)
        return worker.run_job(
            spec,
            store=open_store(config.artifact_store_url, cache_dir=config.artifact_cache_dir),
            model_root=Path(config.model_root),
            trainer=config.trainer,
            work_root=config.artifact_cache_dir / "training",
            send=functools.partial(send_report, celery_app=celery_app),
            heartbeat_seconds=config.heartbeat_seconds,
            outcome_retry_seconds=config.outcome_retry_seconds,
            draining=draining,
        )

    @celery_app.task(name=PING_TASK, shared=False)
    def ping() -> dict:
        """A liveness probe, answered like the platform workers' `workers.ping`."""
        return {
            "pong": True,
            "host": socket.gethostname(),
            "at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        }

    return celery_app


settings = GpuSettings()
app = create_app(settings)


@celeryd_after_setup.connect
def consume_own_probe_queue(sender: str, instance, **kwargs) -> None:
    if instance.app is app:
        instance.app.amqp.queues.select_add(probe_queue(sender))
        # A flag left by an earlier run of this node must not drain the new one.
        drain_flag(settings, sender).unlink(missing_ok=True)


@worker_shutting_down.connect
def raise_drain_flag(sender: str, how: str = "Warm", **kwargs) -> None:
    """Runs in the main process, from Celery's SIGTERM (warm) or SIGQUIT (cold) handler."""
    _draining.set()
    flag = drain_flag(settings, sender)
    flag.parent.mkdir(parents=True, exist_ok=True)
    flag.touch()
