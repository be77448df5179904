"""The console's metrics page: staff only, figures from the same metrics as /metrics."""

import re

import pytest
from django.core.cache import cache

from tests.console.conftest import console, operator  # noqa: F401
from tokenmill.catalog import services as catalog_services
from tokenmill.gateway import health
from tokenmill.observability import figures as figures_module


def figure(html: str, name: str) -> str:
    found = re.search(rf'data-{name}">([^<]*)<', html)
    assert found, name
    return found.group(1).strip()


def test_the_page_is_for_staff_only(client, alice):
    client.force_login(alice)
    response = client.get("/console/metrics/")
    assert response.status_code == 302 and "/console/login/" in response["Location"]


def test_the_index_links_to_it(console):  # noqa: F811
    assert 'href="/console/metrics/"' in console.get("/console/").content.decode()


def test_figures_cover_requests_errors_replicas_queues_and_jobs(
    console,  # noqa: F811
    api,
    alice_key,
    backends,
    fine_tuned,
):
    (up,) = backends(1)
    catalog_services.replica_register(model_id="tiny-chat", url=up.url)
    health.replicas_check()
    cache.delete(figures_module.BASELINE_KEY)
    first = console.get("/console/metrics/").content.decode()
    assert "Totals since the metrics began" in first
    # A minute later, as far as the page knows: the figures cover what came since.
    baseline = cache.get(figures_module.BASELINE_KEY)
    baseline["at"] -= 30
    cache.set(figures_module.BASELINE_KEY, baseline)
    for _ in range(3):
        assert api(alice_key).get("/v1/models").status_code == 200
    assert api(alice_key).get("/v1/files/file-missing").status_code == 404
    assert api("tm-wrong").get("/v1/models").status_code == 401
    page = console.get("/console/metrics/").content.decode()
    assert re.search(r"Over the last 3[0-9] s", page), page
    requests = int(figure(page, 'figure="requests'))
    assert requests >= 5  # the five above, and the first console view
    assert figure(page, 'figure="request_rate').endswith("/s")
    assert figure(page, 'figure="client_error_rate').endswith("%")
    assert figure(page, 'figure="p99').startswith("≤")
    assert figure(page, 'figure="replicas') == "1 of 1"
    assert figure(page, 'queue="default').isdigit()
    assert int(figure(page, 'status="succeeded')) >= 1


@pytest.mark.parametrize(
    ("buckets", "p50", "p99"),
    [
        ({"0.01": 50, "0.1": 99, "1.0": 100, "+Inf": 100}, 0.01, 0.1),
        ({"0.01": 0, "0.1": 0, "+Inf": 0}, None, None),
    ],
)
def test_percentiles_from_buckets(buckets, p50, p99):
    assert figures_module.percentile(buckets, 0.5) == p50
    assert figures_module.percentile(buckets, 0.99) == p99
