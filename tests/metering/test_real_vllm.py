"""Through the real vLLM: the ledger equals, to the token, the usage the clients received."""

import concurrent.futures

import openai
import pytest
from django.conf import settings

from tests.gateway.helpers import wait_for
from tests.gateway.live import LiveServer
from tests.metering.helpers import ledger_totals
from tokenmill.catalog.services import replica_register
from tokenmill.gateway import callers, routes
from tokenmill.gateway.balancer import balancer
from tokenmill.metering import redis_client
from tokenmill.metering.models import UsageEvent


def settled_events() -> int:
    if redis_client.enabled():
        return redis_client.client().xlen(settings.METERING_STREAM)
    return UsageEvent.objects.count()


QUESTION = [{"role": "user", "content": "Tell me a story about a ship."}]


@pytest.fixture
def gateway_on_vllm(vllm_chat, transactional_db, settings):
    settings.GATEWAY_LOCAL_CACHE_SECONDS = 0.2
    replica_register(model_id="tiny-chat", url=vllm_chat.base_url, api_key=vllm_chat.api_key)
    from tokenmill.asgi import application

    routes.forget_local()
    callers.forget_local()
    balancer.outstanding.clear()
    with LiveServer(application, lifespan="on") as server:
        yield server
    routes.forget_local()


def test_concurrent_plain_and_streamed_requests_are_billed_exactly(
    store, gateway_on_vllm, acme, alice_key
):
    sdk = openai.OpenAI(base_url=gateway_on_vllm.url + "/v1", api_key=alice_key, max_retries=0)

    def plain(n: int) -> tuple[int, int]:
        usage = sdk.chat.completions.create(
            model="tiny-chat", messages=QUESTION, max_tokens=8 + n, temperature=0.7
        ).usage
        return usage.prompt_tokens, usage.completion_tokens

    def streamed(n: int) -> tuple[int, int]:
        last = None
        for chunk in sdk.chat.completions.create(
            model="tiny-chat",
            messages=QUESTION,
            max_tokens=8 + n,
            temperature=0.7,
            stream=True,
            stream_options={"include_usage": True},
        ):
            last = chunk.usage or last
        return last.prompt_tokens, last.completion_tokens

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        told = list(pool.map(plain, range(4))) + list(pool.map(streamed, range(4)))
    sdk.close()
    # Each request settles just after its last byte went out; wait with reads only.
    wait_for(lambda: settled_events() == 8, timeout=30, what="eight events")
    billed = ledger_totals(acme)
    assert billed == {
        "requests": 8,
        "prompt_tokens": sum(p for p, _ in told),
        "completion_tokens": sum(c for _, c in told),
    }
