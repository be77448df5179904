"""Batch lines give way to live traffic on the model servers they share.

vLLM's priority scheduling orders requests only when some must wait: on a server with
room, a batch line and a live request run side by side, and every batch line in the
same step slows the live one. So a run with a line already in flight sends its next
line only while the replicas of that line's model hold nothing but this run's own
requests (vLLM's `num_requests_running` + `num_requests_waiting`, from its /metrics).
Beside live traffic, or another batch, or a server whose /metrics does not answer in
BATCH_PACING_TIMEOUT, a run keeps one line in flight: it always progresses, and never
by more than one line at a time.

A line just sent may not have reached the server's count yet, so a reading is
compared only with this run's lines sent at least SETTLE_SECONDS before it: a line
in between counts as someone else's, which errs on the side of live traffic.
"""

import asyncio
import time

import aiohttp
from django.conf import settings

from tokenmill.gateway import routes, upstream
from tokenmill.gateway.errors import GatewayError

LOAD_GAUGES = (b"vllm:num_requests_running", b"vllm:num_requests_waiting")
SETTLE_SECONDS = 0.25


def requests_on_server(metrics_text: bytes) -> int:
    """The requests a vLLM server holds, running or waiting, from its /metrics text
    (every served model's series summed: the base model and its adapters share it)."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(LOAD_GAUGES):
            try:
                total += float(line.rsplit(maxsplit=1)[-1])
            except ValueError:
                continue
    return round(total)


async def _server_load(replica: routes.ReplicaRoute) -> int | None:
    """The requests the replica holds; None when it does not say (in time)."""
    headers = {"authorization": f"Bearer {replica.api_key}"} if replica.api_key else {}
    try:
        async with upstream.session().get(
            replica.url + "/metrics",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=float(settings.BATCH_PACING_TIMEOUT)),
        ) as response:
            if response.status != 200:
                return None
            return requests_on_server(await response.read())
    except (aiohttp.ClientError, TimeoutError):
        return None


class Pacer:
    """One run's view of its model servers: how many of its lines are in flight, and
    whether anyone else is using the servers its next line would go to."""

    def __init__(self, *, tenant_id: int) -> None:
        self.tenant_id = tenant_id
        self._sent: list[float] = []  # when each line in flight was sent
        self._was_clear = False  # the last reading found no one else

    @property
    def in_flight(self) -> int:
        return len(self._sent)

    async def _others(self, model: str) -> int:
        """Requests on `model`'s servers now that are not this run's."""
        try:
            route = await routes.resolve_model(tenant_id=self.tenant_id, model_id=model)
        except GatewayError:
            return 0  # the line's own request says what is wrong with its model
        read_at = time.monotonic()
        loads = await asyncio.gather(*(_server_load(r) for r in route.base.replicas))
        if None in loads:
            # A busy vLLM answers /metrics late, and a load balancer may not answer it at
            # all: not knowing counts as someone else being there.
            return 1
        load = sum(loads)
        settled = sum(1 for sent_at in self._sent if sent_at <= read_at - SETTLE_SECONDS)
        return load - settled

    async def _clear(self, model: str) -> bool:
        """No one else on the servers, at this reading and the one before: a line of this
        run that the server has finished but this run not yet counted off would pass
        for room at a single reading."""
        clear = await self._others(model) <= 0
        was_clear, self._was_clear = self._was_clear, clear
        return clear and was_clear

    async def acquire(self, model: str) -> float:
        """Wait until this run may send a line for `model`, and count it in flight
        (in the same step of the event loop, so two lines cannot both take the turn).
        Returns the line's token for `release`."""
        while self._sent and not await self._clear(model):
            await asyncio.sleep(float(settings.BATCH_PACING_SECONDS))
        self._was_clear = False  # the next line needs readings taken after this one
        sent_at = time.monotonic()
        self._sent.append(sent_at)
        return sent_at

    def release(self, token: float) -> None:
        self._sent.remove(token)
