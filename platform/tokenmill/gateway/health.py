"""Health checks of every replica: GET /health, and /v1/models for the adapters it holds.

Run by a beat task (gateway.check_replicas, every GATEWAY_HEALTH_SECONDS) rather than
inside each gateway process: one prober for the whole fleet however many web pods
there are, its findings shared through the cache (every gateway reads them at most
once a second, never from the database) and shown in the console. Between checks, a
gateway process also skips a replica that has just refused it (balancer.py).
"""

from concurrent.futures import ThreadPoolExecutor

import httpx
from django.conf import settings

from tokenmill.catalog.models import Replica
from tokenmill.catalog.services import replica_health_record


def probe(client: httpx.Client, replica: Replica) -> dict:
    headers = {"authorization": f"Bearer {replica.api_key}"} if replica.api_key else {}
    try:
        health = client.get(replica.url + "/health", headers=headers)
        if health.status_code != 200:
            return {
                "healthy": False,
                "adapters": [],
                "error": f"/health answered {health.status_code}",
            }
        listed = client.get(replica.url + "/v1/models", headers=headers)
        listed.raise_for_status()
        served = listed.json().get("data") or []
    except (httpx.HTTPError, ValueError) as error:
        return {"healthy": False, "adapters": [], "error": f"{type(error).__name__}: {error}"[:500]}
    base = replica.base_model.model_id
    adapters = [
        entry["id"]
        for entry in served
        if isinstance(entry, dict) and entry.get("id") != base and entry.get("parent")
    ]
    return {"healthy": True, "adapters": adapters, "error": ""}


def replicas_check() -> dict[str, int]:
    """Probe every enabled replica once (all at once, in threads) and publish the findings."""
    replicas = list(Replica.objects.filter(enabled=True).select_related("base_model"))
    results: dict[int, dict] = {}
    if replicas:
        timeout = httpx.Timeout(
            settings.GATEWAY_CONNECT_TIMEOUT, read=settings.GATEWAY_HEALTH_SECONDS
        )
        with (
            httpx.Client(timeout=timeout, trust_env=False) as client,
            ThreadPoolExecutor(max_workers=min(32, len(replicas))) as pool,
        ):
            found = pool.map(lambda replica: probe(client, replica), replicas)
            results = {replica.pk: result for replica, result in zip(replicas, found, strict=True)}
    replica_health_record(results=results)
    healthy = sum(1 for result in results.values() if result["healthy"])
    return {"healthy": healthy, "unhealthy": len(results) - healthy}
