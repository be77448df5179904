"""A per-process memo in front of the shared cache, so the hot path reads neither
the cache nor the database on most requests.

Entries live GATEWAY_LOCAL_CACHE_SECONDS (half a second by default): a revoked key, a
suspended organization or a deleted model, whose shared cache entry is cleared on
commit, stops being served by every process within that time. Concurrent misses of
one key share one load.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections


class LocalMemo:
    def __init__(self, *, max_entries: int = 100_000):
        self._values: dict[Any, tuple[float, Any]] = {}
        self._loading: dict[tuple[int, Any], asyncio.Future] = {}
        self._max_entries = max_entries

    def clear(self) -> None:
        self._values.clear()

    def forget(self, key: Any) -> None:
        self._values.pop(key, None)

    async def get(self, key: Any, load: Callable[[], Any]) -> Any:
        """The memoized value, or `load()` (sync; it may read the cache or the database)
        run in Django's thread for sync code."""
        now = time.monotonic()
        entry = self._values.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        loop_key = (id(asyncio.get_running_loop()), key)
        pending = self._loading.get(loop_key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._loading[loop_key] = future
        try:
            value = await sync_to_async(_load_and_close)(load)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here, so an unawaited future logs nothing
            raise
        else:
            if len(self._values) >= self._max_entries:
                self._values.clear()
            self._values[key] = (time.monotonic() + settings.GATEWAY_LOCAL_CACHE_SECONDS, value)
            future.set_result(value)
            return value
        finally:
            del self._loading[loop_key]


def _load_and_close(load: Callable[[], Any]) -> Any:
    # The inference endpoints run outside Django's request cycle, which is what closes
    # connections; a miss is rare (at most one per entry and memo period), so its
    # thread opens a connection when it needs one and closes it at once.
    try:
        return load()
    finally:
        connections.close_all()
