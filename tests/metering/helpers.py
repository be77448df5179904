import concurrent.futures

import httpx

from tokenmill.metering import ledger
from tokenmill.metering.models import LedgerEntry


def fire(url: str, key: str, *, count: int, body: dict | None = None) -> list[httpx.Response]:
    """`count` requests at once (a POST with body, else a GET), each on its own connection."""

    def one(_):
        headers = {"authorization": f"Bearer {key}"}
        if body is None:
            return httpx.get(url, headers=headers, timeout=60)
        return httpx.post(url, json=body, headers=headers, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def ledger_totals(tenant) -> dict[str, int]:
    ledger.aggregate()
    totals = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for entry in LedgerEntry.objects.for_tenant(tenant):
        totals["requests"] += entry.requests
        totals["prompt_tokens"] += entry.prompt_tokens
        totals["completion_tokens"] += entry.completion_tokens
    return totals
