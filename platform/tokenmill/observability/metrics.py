"""The web's Prometheus metrics: requests, latency, errors, tokens, refusals, replicas.

prometheus_client runs in multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by the
settings before it is imported): each process writes its own memory-mapped files,
which /metrics adds up, so every uvicorn and Celery process of a host is counted
exactly once and nothing is lost when one restarts. One update is a lock and a
memory write, a few microseconds.

Labels stay bounded: `route` is a URL pattern (never the raw path), `model` is the
resolved base model (a fine-tuned model counts under its base; an unknown model
under ""), `code` is our own error code.
"""

import contextvars
import time
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf"),
)  # fmt: skip

REQUESTS = Counter(
    "tokenmill_http_requests",
    "HTTP requests answered, by route, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "tokenmill_http_request_duration_seconds",
    "Time from the request to the end of its answer (a stream's last chunk), by route and model.",
    ["route", "model"],
    buckets=LATENCY_BUCKETS,
)
ERRORS = Counter(
    "tokenmill_http_errors",
    "4xx and 5xx answers, by route, status and error code.",
    ["route", "status", "code"],
)
REFUSALS = Counter(
    "tokenmill_rate_limit_refusals",
    "Requests refused with 429 for a rate limit, by route and the limit (requests, tokens).",
    ["route", "limit"],
)
TOKENS = Counter(
    "tokenmill_tokens",
    "Tokens served, by base model and direction (prompt, completion).",
    ["model", "direction"],
)
OUTCOMES = Counter(
    "tokenmill_inference_outcomes",
    "Admitted inference requests by how they ended (completed, cut, failed).",
    ["model", "outcome"],
)
OUTSTANDING = Gauge(
    "tokenmill_replica_outstanding_requests",
    "Requests in flight to each replica, summed over the live gateway processes.",
    ["replica"],
    multiprocess_mode="livesum",
)


@dataclass
class Observation:
    """What one request's metrics need, filled in as the request goes."""

    route: str
    method: str
    started: float = field(default_factory=time.perf_counter)
    model: str = ""
    code: str = ""
    limit: str = ""


_current: contextvars.ContextVar[Observation | None] = contextvars.ContextVar(
    "metrics_observation", default=None
)


def begin(route: str, method: str) -> Observation:
    observation = Observation(route=route, method=method)
    _current.set(observation)
    return observation


def note_model(model: str) -> None:
    observation = _current.get()
    if observation is not None:
        observation.model = model


def note_error(code: str | None, limit: str | None = None) -> None:
    observation = _current.get()
    if observation is not None:
        observation.code = code or ""
        observation.limit = limit or ""


def finish(observation: Observation, status: int) -> None:
    REQUESTS.labels(observation.route, observation.method, str(status)).inc()
    LATENCY.labels(observation.route, observation.model).observe(
        time.perf_counter() - observation.started
    )
    if status >= 400:
        ERRORS.labels(observation.route, str(status), observation.code).inc()
        if status == 429 and observation.code == "rate_limit_exceeded":
            REFUSALS.labels(observation.route, observation.limit or "requests").inc()


def tokens_served(model: str, prompt: int, completion: int, outcome: str) -> None:
    if prompt:
        TOKENS.labels(model, "prompt").inc(prompt)
    if completion:
        TOKENS.labels(model, "completion").inc(completion)
    OUTCOMES.labels(model, outcome).inc()


def replica_outstanding(replica_id: int, count: int) -> None:
    OUTSTANDING.labels(str(replica_id)).set(count)
