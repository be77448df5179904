"""Writes to the catalog: replicas (the serving endpoints of base models) and their health."""

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from tokenmill.catalog.models import BaseModel, Replica

# The gateway keeps the routing table (base models and their replicas) in the cache
# under this key; every write that changes routing clears it after commit, and each
# gateway process re-reads the cache at most once a second.
ROUTES_CACHE_KEY = "gateway:routes:v1"
HEALTH_CACHE_KEY = "gateway:replica-health:v1"


class ReplicaError(Exception):
    def __init__(self, message: str, *, param: str):
        super().__init__(message)
        self.message = message
        self.param = param


def routes_changed() -> None:
    """Clear the cached routing table once the current transaction commits."""
    transaction.on_commit(lambda: cache.delete(ROUTES_CACHE_KEY))


def replica_register(
    *,
    model_id: str,
    url: str,
    api_key: str = "",
    weight: int = 1,
    max_concurrent_requests: int = 64,
) -> Replica:
    """Create or update the replica of `model_id` at `url` (idempotent on model and url)."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if not url.startswith(("http://", "https://")):
        raise ReplicaError(
            f"A replica URL must start with http:// or https://, got {url!r}.", param="url"
        )
    if weight < 1:
        raise ReplicaError(f"weight must be at least 1, got {weight}.", param="weight")
    if max_concurrent_requests < 1:
        raise ReplicaError(
            f"max_concurrent_requests must be at least 1, got {max_concurrent_requests}.",
            param="max_concurrent_requests",
        )
    base_model = BaseModel.objects.filter(model_id=model_id).first()
    if base_model is None:
        raise ReplicaError(f"There is no base model {model_id!r} in the catalog.", param="model_id")
    with transaction.atomic():
        replica, _ = Replica.objects.update_or_create(
            base_model=base_model,
            url=url,
            defaults={
                "api_key": api_key,
                "weight": weight,
                "max_concurrent_requests": max_concurrent_requests,
            },
        )
        routes_changed()
    return replica


def replica_remove(*, model_id: str, url: str) -> int:
    with transaction.atomic():
        deleted, _ = Replica.objects.filter(
            base_model__model_id=model_id, url=url.strip().rstrip("/")
        ).delete()
        routes_changed()
    return deleted


def replica_health_record(*, results: dict[int, dict], checked_at=None) -> None:
    """Publish health-check results to the gateways (cache) and the console (rows).

    `results` maps replica id to {"healthy": bool, "adapters": [names], "error": str}.
    Rows are written only when something changed, so a steady fleet costs no writes.
    """
    checked_at = checked_at or timezone.now()
    snapshot = {
        str(replica_id): {
            "healthy": bool(result["healthy"]),
            "adapters": sorted(result.get("adapters") or []),
            "checked_at": checked_at.timestamp(),
        }
        for replica_id, result in results.items()
    }
    cache.set(HEALTH_CACHE_KEY, snapshot, None)
    for replica in Replica.objects.filter(pk__in=list(results)):
        result = results[replica.pk]
        health = Replica.Health.HEALTHY if result["healthy"] else Replica.Health.UNHEALTHY
        adapters = sorted(result.get("adapters") or [])
        error = (result.get("error") or "")[:500]
        changed = (replica.health, replica.adapters, replica.last_error) != (
            health,
            adapters,
            error,
        )
        stale = (
            replica.last_checked_at is None
            or (checked_at - replica.last_checked_at).total_seconds() > 60
        )
        if changed or stale:
            Replica.objects.filter(pk=replica.pk).update(
                health=health, adapters=adapters, last_error=error, last_checked_at=checked_at
            )
