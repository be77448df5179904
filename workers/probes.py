"""Knowing that a worker still consumes, from outside it.

A worker process can look alive and do nothing: with the filesystem broker, Celery's
prefork pool shares one task pipe between its children behind a lock, and a child
killed while it holds that lock leaves every other child waiting on it forever. The
main process goes on receiving tasks (and answering control messages) that no child
will ever run.

So each worker consumes a probe queue of its own (`probe.<node name>`), and a probe is
a real task sent there: answered through the result backend, it proves the broker,
the worker and a pool child all work. A probe that is not answered in time means a
stall, unless the worker reports tasks running in its pool (all its children are busy
with long work such as a validation or a training run, which is not a stall).
"""

import re
import time
from dataclasses import dataclass, field

import httpx
from celery import Celery
from celery.result import AsyncResult
from kombu import Exchange, Queue

PROBE_PREFIX = "probe."


def probe_queue(node: str) -> Queue:
    # Brokers take letters, digits, dots, dashes and underscores in a name: not "@".
    name = PROBE_PREFIX + re.sub(r"[^\w.-]", "-", node)
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def probe_send(app: Celery, node: str, *, expires: float) -> AsyncResult:
    """Send one probe to `node`'s own queue; it expires unanswered so probes never pile up."""
    queue = probe_queue(node)
    return app.send_task(
        "workers.ping",
        queue=queue,
        declare=[],  # the anonymous exchange puts it on the queue by name; the worker declares it
        expires=expires,
    )


def worker_busy(app: Celery, node: str, *, timeout: float = 2.0) -> bool:
    """True when `node` reports tasks running in its pool: long work, not a stall."""
    replies = app.control.inspect(destination=[node], timeout=timeout).active() or {}
    return bool(replies.get(node))


@dataclass
class Probe:
    """The probing of one worker: one probe in flight at a time, every `every` seconds.

    `check()` answers "ok" (answered), "waiting" (in flight, or busy with long work)
    or "stalled" (not answered within `timeout` while its pool runs nothing).
    """

    app: Celery
    node: str
    every: float
    timeout: float
    # A worker just started is given this long to answer its first probe.
    first_timeout: float = 60.0
    _result: AsyncResult | None = field(default=None, repr=False)
    _sent_at: float = 0.0
    _next_at: float = 0.0
    _answered_once: bool = False

    @property
    def answered(self) -> bool:
        """Whether this worker has answered a probe since it (re)started."""
        return self._answered_once

    def reset(self, *, now: float | None = None) -> None:
        """Forget the probe in flight (the worker was restarted): start as for a new worker."""
        self._result, self._answered_once = None, False
        self._next_at = now if now is not None else time.monotonic()

    def check(self, *, now: float | None = None) -> str:
        now = now if now is not None else time.monotonic()
        if self._result is None:
            if now >= self._next_at:
                limit = self.timeout if self._answered_once else self.first_timeout
                self._result = probe_send(self.app, self.node, expires=limit)
                self._sent_at = now
            return "waiting"
        if self._result.ready():
            self._result.forget()
            self._result, self._answered_once = None, True
            self._next_at = now + self.every
            return "ok"
        limit = self.timeout if self._answered_once else self.first_timeout
        if now - self._sent_at < limit:
            return "waiting"
        self._result = None
        if worker_busy(self.app, self.node):
            self._next_at = now  # every child is busy: probe again, do not restart
            return "waiting"
        return "stalled"


def probe_once(app: Celery, node: str, *, timeout: float) -> tuple[bool, str]:
    """One blocking probe of `node`: (healthy, what was found). For liveness probes."""
    started = time.monotonic()
    result = probe_send(app, node, expires=timeout)
    while time.monotonic() - started < timeout:
        if result.ready():
            result.forget()
            return True, f"{node} consumed its probe in {time.monotonic() - started:.2f}s"
        time.sleep(0.1)
    if worker_busy(app, node):
        return True, f"{node} did not take its probe within {timeout:g}s but is running tasks"
    return False, (
        f"{node} did not consume its probe within {timeout:g}s and runs no task: "
        "it has stopped consuming"
    )


@dataclass
class HttpProbe:
    """The probing of a server process (web, a model server) by HTTP: any answer below
    500 means it serves. `check()` answers like `Probe.check()`: "stalled" once no probe
    has been answered for `timeout` seconds (`first_timeout` after a start)."""

    url: str
    every: float
    timeout: float
    first_timeout: float = 60.0
    request_timeout: float = 5.0
    _since: float | None = None
    _next_at: float = 0.0
    _answered_once: bool = False

    @property
    def answered(self) -> bool:
        return self._answered_once

    def reset(self, *, now: float | None = None) -> None:
        self._since, self._answered_once = None, False
        self._next_at = now if now is not None else time.monotonic()

    def check(self, *, now: float | None = None) -> str:
        now = now if now is not None else time.monotonic()
        if self._since is None:
            self._since = now
        if now < self._next_at:
            return "waiting"
        self._next_at = now + self.every
        if self._serves():
            self._since, self._answered_once = now, True
            return "ok"
        limit = self.timeout if self._answered_once else self.first_timeout
        return "stalled" if now - self._since >= limit else "waiting"

    def _serves(self) -> bool:
        try:
            response = httpx.get(self.url, timeout=self.request_timeout)
        except httpx.HTTPError:
            return False
        return response.status_code < 500
