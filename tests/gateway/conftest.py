import httpx
import pytest

from tests.gateway.fake_backend import FakeBackend
from tests.gateway.live import LiveServer
from tokenmill.catalog import services as catalog_services
from tokenmill.gateway import callers, routes
from tokenmill.gateway.balancer import balancer


def _forget_process_state() -> None:
    routes.forget_local()
    callers.forget_local()
    balancer.outstanding.clear()
    balancer._down_until.clear()


@pytest.fixture
def backends():
    """`backends(n)`: n fake replicas on loopback, stopped after the test."""
    started: list[LiveServer] = []

    def start(count: int = 1) -> list[LiveServer]:
        for _ in range(count):
            server = LiveServer(FakeBackend()).start()
            server.state = server.app.state
            started.append(server)
        return started[-count:]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def backend(backends, transactional_db):
    """One fake replica registered as tiny-chat's only replica."""
    (server,) = backends(1)
    catalog_services.replica_register(model_id="tiny-chat", url=server.url)
    return server


@pytest.fixture
def asgi_connections(monkeypatch):
    """Database connections as an ASGI deployment must have them: not persistent.

    Django runs each sync part of an ASGI request in a thread of its own; a persistent
    connection outlives that thread and is dropped open (a ResourceWarning on
    PostgreSQL). Django's advice, and the production settings' job.
    """
    from django.db import connections

    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


@pytest.fixture
def gateway(transactional_db, settings, asgi_connections):
    """The platform's real ASGI application (gateway in front of Django) under uvicorn."""
    settings.GATEWAY_LOCAL_CACHE_SECONDS = 0.2
    from tokenmill.asgi import application

    _forget_process_state()
    server = LiveServer(application, lifespan="on").start()
    yield server
    server.stop()
    _forget_process_state()


@pytest.fixture
def call(gateway):
    """`call(key, path, json)` posts to the live gateway; returns the httpx response."""

    def post(key: str | None, path: str, body: dict | None = None, **kwargs) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.post(gateway.url + path, json=body, headers=headers, timeout=30, **kwargs)

    return post


def make_fine_tuned_model(tenant, *, suffix: str = "rooms"):
    """A succeeded job of `tenant` and its fine-tuned model on tiny-chat (no training run)."""
    from tests.finetuning.conftest import make_training_file
    from tokenmill.catalog.models import BaseModel
    from tokenmill.finetuning.models import FineTunedModel, FineTuningJob

    job = FineTuningJob.objects.create(
        tenant=tenant,
        base_model=BaseModel.objects.get(model_id="tiny-chat"),
        training_file=make_training_file(tenant),
        suffix=suffix,
        seed=1,
        status="succeeded",
    )
    model_id = f"ft:tiny-chat:{tenant.slug}:{suffix}:{job.public_id[-6:]}"
    FineTuningJob.unscoped.filter(pk=job.pk).update(fine_tuned_model=model_id)
    return FineTunedModel.objects.create(
        model_id=model_id,
        tenant=tenant,
        job=job,
        base_model=job.base_model,
        artifact_key=f"jobs/{job.public_id}",
    )


@pytest.fixture
def fine_tuned(transactional_db, acme, artifact_store):
    return make_fine_tuned_model(acme)
