"""The one pooled HTTP client every gateway request reaches model servers through.

aiohttp rather than httpx: measured on the serving benchmark, httpx's connection pool
checks every idle connection with a system call on each request, which cost the
gateway about 2 ms of CPU per request at 8 concurrent and grows with concurrency.

Timeouts, each with its own words for the caller:
- GATEWAY_CONNECT_TIMEOUT: opening a connection (a replica that refuses or does not
  answer is retried on another, since nothing was sent);
- GATEWAY_FIRST_BYTE_TIMEOUT: from sending the request to the response's headers, and
  between two reads of the answer (two chunks of a stream);
- GATEWAY_TOTAL_TIMEOUT: the whole request, stream included.
"""

import asyncio
import weakref

import aiohttp
from django.conf import settings

_sessions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession]" = (
    weakref.WeakKeyDictionary()
)

# Exceptions that mean the request never reached a replica: safe to try another.
NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# A pooled connection the server had closed, before any byte of a response.
STALE = (aiohttp.ServerDisconnectedError,)
READ_TIMEOUT = (aiohttp.SocketTimeoutError, TimeoutError)
FAILED = (aiohttp.ClientError,)


def session() -> aiohttp.ClientSession:
    """This event loop's session (one per process under uvicorn)."""
    loop = asyncio.get_running_loop()
    found = _sessions.get(loop)
    if found is None or found.closed:
        found = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.GATEWAY_MAX_CONNECTIONS,
                limit_per_host=0,
                keepalive_timeout=30,
                ttl_dns_cache=60,
            ),
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=settings.GATEWAY_CONNECT_TIMEOUT,
                sock_read=settings.GATEWAY_FIRST_BYTE_TIMEOUT,
            ),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
            # Replica URLs come from the catalog; proxies from the environment do not apply.
            trust_env=False,
        )
        _sessions[loop] = found
    return found


async def close_all() -> None:
    for found in list(_sessions.values()):
        await found.close()
    _sessions.clear()


async def close_current() -> None:
    """Close this event loop's session: for a loop that ends (a batch worker's chunk)."""
    found = _sessions.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()
