"""The metering Redis (settings.RATELIMIT_REDIS_URL): limits, in-flight requests, events.

"" means no Redis: the embedded default, where the database stands in for it.

Threads share one pooled client per URL (`client()`); the request path runs on the
event loop with one pooled redis.asyncio client per loop (`async_client()`), closed by
`aclose()` when the loop's server shuts down. Lua scripts are registered once per
client (`script`, `async_script`): a call is one EVALSHA round trip.
"""

import asyncio
import functools
import weakref

import redis
import redis.asyncio
from django.conf import settings


def enabled() -> bool:
    return bool(settings.RATELIMIT_REDIS_URL)


@functools.cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, health_check_interval=30)


def client() -> redis.Redis:
    return _client_for(settings.RATELIMIT_REDIS_URL)


_scripts: dict[tuple[int, str], object] = {}


def script(text: str):
    found = client()
    key = (id(found), text)
    registered = _scripts.get(key)
    if registered is None or registered.registered_client is not found:
        registered = _scripts[key] = found.register_script(text)
    return registered


class _LoopClient:
    def __init__(self, url: str):
        self.url = url
        self.client = redis.asyncio.Redis.from_url(url, socket_timeout=5, health_check_interval=30)
        self.scripts: dict[str, object] = {}


_per_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient]" = (
    weakref.WeakKeyDictionary()
)


def _loop_client() -> _LoopClient:
    loop = asyncio.get_running_loop()
    url = settings.RATELIMIT_REDIS_URL
    found = _per_loop.get(loop)
    if found is None or found.url != url:
        found = _per_loop[loop] = _LoopClient(url)
    return found


def async_client() -> redis.asyncio.Redis:
    """This event loop's client of the metering Redis."""
    return _loop_client().client


def async_script(text: str):
    found = _loop_client()
    registered = found.scripts.get(text)
    if registered is None:
        registered = found.scripts[text] = found.client.register_script(text)
    return registered


async def aclose() -> None:
    """Close this loop's client (its server is shutting down)."""
    found = _per_loop.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.client.aclose()
