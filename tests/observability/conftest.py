import io
import json
import logging

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpu_inference import telemetry
from tests.gateway.conftest import (  # noqa: F401
    asgi_connections,
    backend,
    backends,
    call,
    fine_tuned,
    gateway,
)

METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    return METRICS_TOKEN


@pytest.fixture
def scrape(gateway, metrics_token):  # noqa: F811
    """`scrape()`: the live /metrics, parsed; `scrape().value(name, **labels)` sums samples."""

    def get() -> "Scrape":
        response = httpx.get(
            gateway.url + "/metrics", headers={"authorization": f"Bearer {metrics_token}"}
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return Scrape(response.text)

    return get


class Scrape:
    def __init__(self, text: str):
        self.text = text
        self.samples = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        return sum(
            sample.value
            for sample in self.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def has(self, name: str, **labels: str) -> bool:
        return any(
            sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
            for sample in self.samples
        )


@pytest.fixture
def captured():
    """Every record of the test process at DEBUG, as JSON lines (the web's, run in-process)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(telemetry.JsonFormatter())
    handler.addFilter(telemetry.ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(level)
