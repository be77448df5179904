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
def gateway(transactional_db, settings):
    """The platform's real ASGI application (gateway in front of Django) under uvicorn."""
    settings.GATEWAY_LOCAL_CACHE_SECONDS = 0.2
    from tokenmill.asgi import application

    _forget_process_state()
    server = LiveServer(application).start()
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
