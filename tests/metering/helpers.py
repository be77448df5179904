import asyncio
import concurrent.futures
import time

import aiohttp
import httpx
import orjson

from tokenmill.metering import ledger
from tokenmill.metering.models import LedgerEntry


def fire(
    url: str, key: str | list[str], *, count: int, body: dict | None = None
) -> list[httpx.Response]:
    """`count` requests at once (a POST with body, else a GET), each on its own connection;
    with a list of keys, request n uses key n modulo their number.

    One aiohttp session on an event loop of its own thread (the browser tests keep one
    running in this thread): 200 threads of httpx clients would cost the test process,
    which also runs the gateway, more than the gateway itself.
    """
    keys = [key] if isinstance(key, str) else key
    payload = None if body is None else orjson.dumps(body)

    async def burst() -> list[httpx.Response]:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def one(n: int) -> httpx.Response:
                headers = {"authorization": f"Bearer {keys[n % len(keys)]}"}
                if payload is not None:
                    headers["content-type"] = "application/json"
                method = "GET" if payload is None else "POST"
                async with session.request(method, url, data=payload, headers=headers) as got:
                    content = await got.read()
                    return httpx.Response(
                        got.status, headers=list(got.raw_headers), content=content
                    )

            return list(await asyncio.gather(*(one(n) for n in range(count))))

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, burst()).result()


def ledger_totals(tenant) -> dict[str, int]:
    ledger.aggregate()
    totals = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for entry in LedgerEntry.objects.for_tenant(tenant):
        totals["requests"] += entry.requests
        totals["prompt_tokens"] += entry.prompt_tokens
        totals["completion_tokens"] += entry.completion_tokens
    return totals


def a_fresh_minute(margin: float = 15) -> None:
    """Wait until the current minute has `margin` seconds left: a burst that straddled two
    minutes would rightly get twice the limit through."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)
