"""The one pooled HTTP client every gateway request reaches model servers through.

Timeouts, each with its own words for the caller:
- GATEWAY_CONNECT_TIMEOUT: opening a connection (a replica that refuses or does not
  answer is retried on another, since nothing was sent);
- GATEWAY_FIRST_BYTE_TIMEOUT: from sending the request to the response's headers, and
  between two chunks of a stream;
- GATEWAY_TOTAL_TIMEOUT: the whole request, stream included.
"""

import asyncio
import weakref

import httpx
from django.conf import settings

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
    weakref.WeakKeyDictionary()
)


def client() -> httpx.AsyncClient:
    """This event loop's client (one per process under uvicorn)."""
    loop = asyncio.get_running_loop()
    found = _clients.get(loop)
    if found is None or found.is_closed:
        found = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=settings.GATEWAY_CONNECT_TIMEOUT,
                read=settings.GATEWAY_FIRST_BYTE_TIMEOUT,
                write=settings.GATEWAY_FIRST_BYTE_TIMEOUT,
                pool=settings.GATEWAY_CONNECT_TIMEOUT,
            ),
            limits=httpx.Limits(
                max_connections=settings.GATEWAY_MAX_CONNECTIONS,
                max_keepalive_connections=settings.GATEWAY_MAX_CONNECTIONS,
                keepalive_expiry=30,
            ),
            # Replica URLs come from the catalog; proxies from the environment do not apply.
            trust_env=False,
        )
        _clients[loop] = found
    return found


async def close_all() -> None:
    for found in list(_clients.values()):
        await found.aclose()
    _clients.clear()
