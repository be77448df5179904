"""Figures read at scrape time, not counted: replica health, queue depth, job states.

They are the state of shared systems (the catalog, the health cache, the broker), the
same whichever web process is asked, so they are read when /metrics is scraped (or
the console page is drawn) rather than kept in every process.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from tokenmill.catalog.models import Replica
from tokenmill.catalog.services import HEALTH_CACHE_KEY
from tokenmill.finetuning.models import FineTuningJob

logger = logging.getLogger(__name__)


def replica_health() -> list[dict]:
    """Every enabled replica with the health check's latest finding (stale counts as down)."""
    snapshot = cache.get(HEALTH_CACHE_KEY) or {}
    fresh_after = time.time() - settings.GATEWAY_HEALTH_STALE_SECONDS
    found = []
    for replica in Replica.objects.filter(enabled=True).select_related("base_model"):
        checked = snapshot.get(str(replica.pk))
        healthy = bool(checked and checked["healthy"] and checked["checked_at"] >= fresh_after)
        found.append(
            {
                "id": replica.pk,
                "base_model": replica.base_model.model_id,
                "url": replica.url,
                "healthy": healthy,
            }
        )
    return found


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each Celery queue (None: the broker could not be read)."""
    from workers.celery import QUEUES, app

    depths: dict[str, int | None] = dict.fromkeys(QUEUES)
    try:
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            for name in QUEUES:
                depths[name] = channel.queue_declare(queue=name).message_count
    except Exception as error:  # a broker outage must not take /metrics down with it
        logger.warning("could not read the queue depths: %s", error)
    return depths


def job_states() -> dict[str, int]:
    counts = dict.fromkeys(FineTuningJob.Status.values, 0)
    for row in FineTuningJob.unscoped.values("status").annotate(count=Count("id")):
        counts[row["status"]] = row["count"]
    return counts


class FleetCollector:
    """A prometheus_client collector of the figures above."""

    def collect(self):
        replicas = replica_health()
        healthy = GaugeMetricFamily(
            "tokenmill_replica_healthy",
            "1 when the replica's latest health check passed and is fresh, else 0.",
            labels=["replica", "base_model"],
        )
        for replica in replicas:
            healthy.add_metric(
                [str(replica["id"]), replica["base_model"]], 1 if replica["healthy"] else 0
            )
        yield healthy
        depth = GaugeMetricFamily(
            "tokenmill_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"]
        )
        for name, count in queue_depths().items():
            if count is not None:
                depth.add_metric([name], count)
        yield depth
        jobs = GaugeMetricFamily(
            "tokenmill_fine_tuning_jobs", "Fine-tuning jobs by status.", labels=["status"]
        )
        for status, count in job_states().items():
            jobs.add_metric([status], count)
        yield jobs
