"""No database read or write on the hot path once the process's memo is warm.

With Redis for the limits and the usage events, as production runs; the embedded
default writes them to the database by design.
"""

import threading

from django.db.backends import utils

from tests.gateway.helpers import chat, sse_events
from tests.metering.conftest import redis_store  # noqa: F401


def test_warm_requests_run_no_sql_at_all(
    redis_store,  # noqa: F811
    backend,
    call,
    alice_key,
    settings,
    monkeypatch,
):
    settings.GATEWAY_LOCAL_CACHE_SECONDS = 60
    assert call(alice_key, "/v1/chat/completions", chat()).status_code == 200  # warms the memo
    statements: list[tuple[str, str]] = []
    lock = threading.Lock()
    original_execute = utils.CursorWrapper.execute
    original_executemany = utils.CursorWrapper.executemany

    def counting(original):
        def execute(self, sql, *args, **kwargs):
            with lock:
                statements.append((threading.current_thread().name, sql))
            return original(self, sql, *args, **kwargs)

        return execute

    monkeypatch.setattr(utils.CursorWrapper, "execute", counting(original_execute))
    monkeypatch.setattr(utils.CursorWrapper, "executemany", counting(original_executemany))
    for _ in range(3):
        assert call(alice_key, "/v1/chat/completions", chat()).status_code == 200
        streamed = call(alice_key, "/v1/chat/completions", chat(stream=True))
        assert sse_events(streamed.text)[-1] == "[DONE]"
    assert statements == []
