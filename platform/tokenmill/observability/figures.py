"""The console's key figures, from the same multiprocess metrics /metrics serves.

Rates and percentiles need two readings: each page view compares the current totals
with a baseline kept in the cache, which is renewed once it is a minute old, so the
figures cover the last minute or so (the first view shows totals since the metrics
folder was created, and says so).
"""

import time
from dataclasses import dataclass

from django.core.cache import cache
from prometheus_client import CollectorRegistry, multiprocess

from tokenmill.observability import fleet

BASELINE_KEY = "observability:console-baseline:v1"
BASELINE_SECONDS = 60


def reading() -> dict:
    """Totals over every process of this host: requests, errors, tokens, latency buckets."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    found = {"at": time.time(), "requests": 0.0, "4xx": 0.0, "5xx": 0.0, "refusals": 0.0}
    found.update({"prompt_tokens": 0.0, "completion_tokens": 0.0, "buckets": {}})
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "tokenmill_http_requests_total":
                found["requests"] += sample.value
                status = sample.labels["status"]
                if status.startswith(("4", "5")):
                    found[status[0] + "xx"] += sample.value
            elif sample.name == "tokenmill_rate_limit_refusals_total":
                found["refusals"] += sample.value
            elif sample.name == "tokenmill_tokens_total":
                found[sample.labels["direction"] + "_tokens"] += sample.value
            elif sample.name == "tokenmill_http_request_duration_seconds_bucket":
                bound = sample.labels["le"]
                found["buckets"][bound] = found["buckets"].get(bound, 0.0) + sample.value
    return found


def percentile(buckets: dict[str, float], fraction: float) -> float | None:
    """The upper bound of the bucket that holds `fraction` of the observations (seconds)."""
    ordered = sorted(buckets.items(), key=lambda item: float(item[0]))
    total = ordered[-1][1] if ordered else 0
    if not total:
        return None
    for bound, count in ordered:
        if count >= fraction * total:
            return float(bound)
    return None


@dataclass
class Figures:
    window_seconds: float | None  # None: totals since the metrics began
    requests: float
    request_rate: float | None
    error_rate: float | None  # share of requests answered 5xx
    client_error_rate: float | None
    refusals: float
    prompt_tokens: float
    completion_tokens: float
    p50_seconds: float | None
    p99_seconds: float | None
    replicas_healthy: int
    replicas_total: int
    queue_depths: dict
    job_states: dict


def figures() -> Figures:
    now = reading()
    baseline = cache.get(BASELINE_KEY)
    if baseline is None or now["at"] - baseline["at"] >= BASELINE_SECONDS:
        cache.set(BASELINE_KEY, now, BASELINE_SECONDS * 10)
    if baseline is None or now["at"] - baseline["at"] < 1:
        baseline, window = None, None
    else:
        window = now["at"] - baseline["at"]

    def delta(name: str) -> float:
        return now[name] - (baseline[name] if baseline else 0.0)

    buckets = {
        bound: count - (baseline["buckets"].get(bound, 0.0) if baseline else 0.0)
        for bound, count in now["buckets"].items()
    }
    requests = delta("requests")
    replicas = fleet.replica_health()
    return Figures(
        window_seconds=window,
        requests=requests,
        request_rate=requests / window if window else None,
        error_rate=delta("5xx") / requests if requests else None,
        client_error_rate=delta("4xx") / requests if requests else None,
        refusals=delta("refusals"),
        prompt_tokens=delta("prompt_tokens"),
        completion_tokens=delta("completion_tokens"),
        p50_seconds=percentile(buckets, 0.5),
        p99_seconds=percentile(buckets, 0.99),
        replicas_healthy=sum(1 for replica in replicas if replica["healthy"]),
        replicas_total=len(replicas),
        queue_depths=fleet.queue_depths(),
        job_states=fleet.job_states(),
    )
