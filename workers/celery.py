"""The Celery application: queues, routing and broker settings.

Broker: Redis when REDIS_URL (or CELERY_BROKER_URL) is set, otherwise kombu's
filesystem broker under var/broker, so the embedded default needs no service. Queues:
- `default`: validation, job preparation, metering, billing;
- `gpu`: training, one task at a time per GPU;
- `batch`: Batch API lines, sent through the gateway's request path at a lower
  priority than live traffic, on workers of their own;
- `control`: what GPU workers report back (events, checkpoints, outcomes), the
  reaper and the dispatcher; a worker of its own consumes it, so reports and the
  reaper never wait behind a validation.
Every worker also consumes its own probe queue (workers/probes.py), through
which runplatform and liveness probes see that it still runs tasks.
"""

import os
import sys
from pathlib import Path

from celery import Celery
from celery.signals import celeryd_after_setup
from kombu import Exchange, Queue

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "platform") not in sys.path:  # the Django project lives in platform/
    sys.path.insert(0, str(ROOT / "platform"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenmill.settings")

from django.conf import settings  # noqa: E402

from gpu_inference import protocol, task_metrics, telemetry  # noqa: E402
from gpu_inference.broker import (  # noqa: E402
    filesystem_transport_options,
    use_atomic_filesystem_transport,
)

use_atomic_filesystem_transport()
# Task counts, durations and failures, and the job id in task log lines (no Django
# needed: GPU nodes connect the same hooks).
task_metrics.connect()
telemetry.connect_celery_logging()

QUEUES = protocol.QUEUES

# Every task counts its deliveries and gives up on one that keeps killing its worker.
app = Celery("tokenmill", task_cls="workers.deliveries:BoundedDeliveriesTask")


def broker_transport_options() -> dict:
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        return filesystem_transport_options(Path(settings.CELERY_BROKER_FOLDER))
    # Redis: give back a dead worker's unacknowledged tasks in minutes, not hours.
    return {"visibility_timeout": 3600, "unacked_restore_interval": 30}


def configure(celery_app: Celery) -> None:
    results = settings.CELERY_RESULT_BACKEND
    if results.startswith("file://"):
        Path(results.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    celery_app.conf.update(
        broker_url=settings.CELERY_BROKER_URL,
        broker_transport_options=broker_transport_options(),
        broker_connection_retry_on_startup=True,
        result_backend=results,
        result_expires=3600,
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES
        ],
        task_default_queue="default",
        task_default_exchange="default",
        task_default_routing_key="default",
        task_routes={
            "finetuning.train": {"queue": "gpu", "routing_key": "gpu"},
            "finetuning.report": {"queue": "control", "routing_key": "control"},
            "finetuning.reap": {"queue": "control", "routing_key": "control"},
            "finetuning.dispatch": {"queue": "control", "routing_key": "control"},
            "gateway.check_replicas": {"queue": "control", "routing_key": "control"},
            "batches.run": {"queue": "batch", "routing_key": "batch"},
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        timezone="UTC",
        enable_utc=True,
        worker_hijack_root_logger=False,
        beat_schedule={
            "reap-fine-tuning-jobs": {
                "task": "finetuning.reap",
                "schedule": float(settings.JOB_REAPER_SECONDS),
            },
            "aggregate-usage": {
                "task": "metering.aggregate",
                "schedule": float(settings.METERING_LEDGER_SECONDS),
            },
            "sync-billing": {
                "task": "billing.sync",
                "schedule": float(settings.BILLING_SYNC_SECONDS),
            },
            "sweep-batches": {
                "task": "batches.sweep",
                "schedule": float(settings.BATCH_SWEEP_SECONDS),
            },
            "check-serving-replicas": {
                "task": "gateway.check_replicas",
                "schedule": float(settings.GATEWAY_HEALTH_SECONDS),
            },
        },
    )


@celeryd_after_setup.connect
def consume_own_probe_queue(sender: str, instance, **kwargs) -> None:
    from workers.probes import probe_queue

    instance.app.amqp.queues.select_add(probe_queue(sender))


configure(app)
app.autodiscover_tasks(
    [
        "workers",
        "tokenmill.files",
        "tokenmill.finetuning",
        "tokenmill.gateway",
        "tokenmill.metering",
        "tokenmill.billing",
        "tokenmill.batches",
    ]
)
