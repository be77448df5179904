"""Choosing a replica: least outstanding requests, weighted, capped, adapter-aware.

Counts are this process's own requests in flight (each gateway process balances what
it sends; a load balancer URL counts as one replica with its weight). A replica that
refused a connection is skipped for GATEWAY_REPLICA_DOWN_SECONDS; one the health check
found unhealthy is skipped while that finding is fresh.
"""

import itertools
import time

from django.conf import settings

from tokenmill.gateway.errors import GatewayError, model_unavailable
from tokenmill.gateway.routes import ModelRoute, ReplicaRoute
from tokenmill.observability import metrics


class Balancer:
    def __init__(self) -> None:
        self.outstanding: dict[int, int] = {}
        self._down_until: dict[int, float] = {}
        self._turn = itertools.count()

    def mark_down(self, replica: ReplicaRoute) -> None:
        self._down_until[replica.id] = time.monotonic() + settings.GATEWAY_REPLICA_DOWN_SECONDS

    def mark_up(self, replica: ReplicaRoute) -> None:
        self._down_until.pop(replica.id, None)

    def acquire(self, replica: ReplicaRoute) -> None:
        count = self.outstanding[replica.id] = self.outstanding.get(replica.id, 0) + 1
        metrics.replica_outstanding(replica.id, count)

    def release(self, replica: ReplicaRoute) -> None:
        count = self.outstanding[replica.id] = max(0, self.outstanding.get(replica.id, 0) - 1)
        metrics.replica_outstanding(replica.id, count)

    def candidates(self, route: ModelRoute, health: dict) -> list[ReplicaRoute]:
        """Replicas to try, best first; raises 503 when none can take the request."""
        replicas = route.base.replicas
        if not replicas:
            raise model_unavailable(route.model_id, "it has no serving replicas.")
        now = time.monotonic()
        fresh_after = time.time() - settings.GATEWAY_HEALTH_STALE_SECONDS
        usable, full = [], 0
        for replica in replicas:
            checked = health.get(str(replica.id))
            if checked and checked["checked_at"] >= fresh_after and not checked["healthy"]:
                continue
            if self._down_until.get(replica.id, 0) > now:
                continue
            if self.outstanding.get(replica.id, 0) >= replica.max_concurrent_requests:
                full += 1
                continue
            usable.append(replica)
        if not usable:
            if full:
                raise GatewayError(
                    f"The model {route.model_id!r} is at capacity: its replicas are serving "
                    "as many requests as they can. Try again in a few seconds.",
                    status=503,
                    code="model_overloaded",
                )
            raise model_unavailable(route.model_id, "none of its replicas is healthy.")
        # Rotate before the stable sort, so replicas with equal load take turns.
        turn = next(self._turn) % len(usable)
        usable = usable[turn:] + usable[:turn]

        def load(replica: ReplicaRoute) -> float:
            return (self.outstanding.get(replica.id, 0) + 1) / replica.weight

        if route.fine_tuned:

            def holds(replica: ReplicaRoute) -> bool:
                checked = health.get(str(replica.id))
                return bool(checked) and route.model_id in checked["adapters"]

            return sorted(usable, key=lambda replica: (not holds(replica), load(replica)))
        return sorted(usable, key=load)


balancer = Balancer()
