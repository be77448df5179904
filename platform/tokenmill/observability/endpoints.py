"""Operations endpoints, answered in front of Django: no session, no key, no rate limit.

- `GET /healthz`: liveness, the process answers (200 at once).
- `GET /readyz`: readiness, 200 once the database, Redis (when configured) and at
  least one healthy model replica answer; else 503 with a JSON body naming what
  failed. Each process checks at most once per READINESS_CACHE_SECONDS.
- `GET /metrics`: Prometheus text of every process on this host (multiprocess
  files) and the fleet's figures; only with `Authorization: Bearer $METRICS_TOKEN`.
  Without METRICS_TOKEN the path is not served (a 404 like any unknown page).
- `GET /metrics/targets`: the model servers' own /metrics as Prometheus HTTP service
  discovery targets, and `GET /metrics/replicas/<id>`: one replica's /metrics passed
  through as it is (vLLM's own figures), both behind the same token.
"""

import asyncio
import hmac
import time
from urllib.parse import urlsplit

import orjson
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from tokenmill.observability import fleet

JSON = [(b"content-type", b"application/json")]


def serve_operations(app):
    async def operations(scope, receive, send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/healthz":
                await _reply(send, 200, {"status": "ok"})
                return
            if path == "/readyz":
                ready, checks = await readiness()
                await _reply(send, 200 if ready else 503, {"ready": ready, "checks": checks})
                return
            if settings.METRICS_TOKEN and (path == "/metrics" or path.startswith("/metrics/")):
                await metrics_endpoint(scope, send)
                return
        await app(scope, receive, send)

    return operations


async def _reply(send, status: int, body, *, headers=JSON, raw: bytes | None = None) -> None:
    payload = raw if raw is not None else orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _error(message: str, code: str) -> dict:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }


# --- readiness ------------------------------------------------------------------------


def _check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    finally:
        connection.close()  # this thread is a pool's; the connection goes back to it


def _redis_urls() -> dict[str, str]:
    roles = {
        "cache": settings.REDIS_CACHE_URL,
        "broker": settings.CELERY_BROKER_URL
        if settings.CELERY_BROKER_URL.startswith("redis")
        else "",
        "ratelimit": settings.RATELIMIT_REDIS_URL,
    }
    return {role: url for role, url in roles.items() if url}


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


def _check_redis(urls: dict[str, str]) -> dict:
    failed = []
    for role, url in urls.items():
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            client.ping()
        except redis.RedisError as error:
            failed.append(f"{role} ({_redacted(url)}): {type(error).__name__}")
        finally:
            client.close()
    return {"ok": True} if not failed else {"ok": False, "error": "; ".join(failed)}


def _check_replicas() -> dict:
    replicas = fleet.replica_health()
    healthy = sum(1 for replica in replicas if replica["healthy"])
    if healthy:
        return {"ok": True, "healthy": healthy, "total": len(replicas)}
    return {
        "ok": False,
        "healthy": 0,
        "total": len(replicas),
        "error": (
            f"no healthy model replica ({len(replicas)} enabled, none passed a recent health check)"
        ),
    }


def readiness_checks() -> dict:
    checks = {"database": _check_database()}
    if checks["database"]["ok"]:
        urls = _redis_urls()
        if urls:
            checks["redis"] = _check_redis(urls)
        try:
            checks["replicas"] = _check_replicas()
        except Exception as error:  # the catalog or the cache could not be read
            checks["replicas"] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
        finally:
            connection.close()
    return checks


class _Readiness:
    def __init__(self) -> None:
        self.found: tuple[float, bool, dict] | None = None
        self.lock: asyncio.Lock | None = None

    async def get(self) -> tuple[bool, dict]:
        if self.lock is None:
            self.lock = asyncio.Lock()
        async with self.lock:  # concurrent probes share one check
            now = time.monotonic()
            if self.found is None or now - self.found[0] >= settings.READINESS_CACHE_SECONDS:
                checks = await sync_to_async(readiness_checks, thread_sensitive=False)()
                ready = all(check["ok"] for check in checks.values()) and "replicas" in checks
                self.found = (time.monotonic(), ready, checks)
            return self.found[1], self.found[2]


_readiness = _Readiness()


async def readiness() -> tuple[bool, dict]:
    return await _readiness.get()


def forget_readiness() -> None:
    _readiness.found = None
    _readiness.lock = None


# --- metrics --------------------------------------------------------------------------


def render_metrics() -> bytes:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(fleet.FleetCollector())
    try:
        return generate_latest(registry)
    finally:
        connection.close()


def scrape_targets() -> list[dict]:
    try:
        replicas = fleet.replica_health()
    finally:
        connection.close()
    targets = []
    for replica in replicas:
        parts = urlsplit(replica["url"])
        targets.append(
            {
                "targets": [parts.netloc],
                "labels": {
                    "__scheme__": parts.scheme,
                    "__metrics_path__": (parts.path.rstrip("/") or "") + "/metrics",
                    "replica": str(replica["id"]),
                    "base_model": replica["base_model"],
                },
            }
        )
    return targets


def _replica(replica_id: str):
    from tokenmill.catalog.models import Replica

    try:
        return Replica.objects.filter(pk=int(replica_id), enabled=True).first()
    except ValueError:
        return None
    finally:
        connection.close()


async def metrics_endpoint(scope, send) -> None:
    headers = dict(scope.get("headers") or [])
    given = headers.get(b"authorization", b"")
    expected = f"Bearer {settings.METRICS_TOKEN}".encode()
    if not hmac.compare_digest(given, expected):
        await _reply(
            send,
            401,
            _error("Metrics need Authorization: Bearer <METRICS_TOKEN>.", "invalid_metrics_token"),
        )
        return
    if scope["method"] not in ("GET", "HEAD"):
        await _reply(send, 405, _error("Use GET.", "method_not_allowed"))
        return
    path = scope["path"].rstrip("/")
    if path == "/metrics":
        body = await sync_to_async(render_metrics, thread_sensitive=False)()
        await _reply(
            send, 200, None, headers=[(b"content-type", CONTENT_TYPE_LATEST.encode())], raw=body
        )
        return
    if path == "/metrics/targets":
        await _reply(send, 200, await sync_to_async(scrape_targets, thread_sensitive=False)())
        return
    if path.startswith("/metrics/replicas/"):
        await _replica_metrics(send, path.removeprefix("/metrics/replicas/"))
        return
    await _reply(send, 404, _error(f"Unknown metrics path {path!r}.", "unknown_url"))


async def _replica_metrics(send, replica_id: str) -> None:
    from tokenmill.gateway import upstream

    replica = await sync_to_async(_replica, thread_sensitive=False)(replica_id)
    if replica is None:
        await _reply(send, 404, _error(f"No enabled replica {replica_id!r}.", "replica_not_found"))
        return
    auth = {"authorization": f"Bearer {replica.api_key}"} if replica.api_key else {}
    try:
        async with upstream.session().get(replica.url + "/metrics", headers=auth) as response:
            body = await response.read()
            kind = response.headers.get("content-type", "text/plain; version=0.0.4")
            status = response.status
    except (upstream.FAILED, TimeoutError) as error:
        await _reply(
            send,
            502,
            _error(
                f"Replica {replica_id} did not answer: {type(error).__name__}.", "upstream_error"
            ),
        )
        return
    await _reply(send, status, None, headers=[(b"content-type", kind.encode())], raw=body)
