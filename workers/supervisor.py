"""Run a table of named child processes and keep each one working.

A child that exits is started again; a Celery worker whose probe goes unanswered
(workers/probes.py) is stopped and started again. A child that keeps dying (more than
`max_restarts` times within `restart_window` seconds) stops everything, so a platform
that cannot run never pretends to be up.

Each child runs in a process group of its own, so a restart takes the worker's pool
children with it: a stalled pool is never left behind holding its lock.
"""

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery

from workers.probes import HttpProbe, Probe

logger = logging.getLogger(__name__)


@dataclass
class Child:
    """One supervised process: a name, its command, and how to see that it works: the
    Celery node name its probe task goes to (a worker), or a URL it answers (a server).
    `start_seconds` is how long it may take to answer its first probe."""

    name: str
    argv: list[str]
    worker_node: str | None = None
    health_url: str | None = None
    start_seconds: float | None = None


@dataclass
class Running:
    child: Child
    process: subprocess.Popen
    probe: Probe | HttpProbe | None
    restarts: list[float] = field(default_factory=list)


class GaveUp(Exception):
    """A child kept dying: the platform stops."""


class Supervisor:
    def __init__(
        self,
        children: list[Child],
        *,
        cwd: Path,
        env: dict[str, str],
        app: Celery | None = None,
        probe_every: float = 15.0,
        probe_timeout: float = 30.0,
        first_probe_timeout: float = 120.0,
        stop_grace: float = 10.0,
        max_restarts: int = 5,
        restart_window: float = 300.0,
        report: Callable[[str], None] = logger.warning,
    ):
        self.children = children
        self.cwd, self.env, self.app = cwd, env, app
        self.probe_every, self.probe_timeout = probe_every, probe_timeout
        self.first_probe_timeout = first_probe_timeout
        self.stop_grace = stop_grace
        self.max_restarts, self.restart_window = max_restarts, restart_window
        self.report = report
        self.running: dict[str, Running] = {}

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        for child in self.children:
            self.running[child.name] = Running(child, self._spawn(child), self._probe(child))

    def _probe(self, child: Child) -> Probe | HttpProbe | None:
        timing = {
            "every": self.probe_every,
            "timeout": self.probe_timeout,
            "first_timeout": child.start_seconds or self.first_probe_timeout,
        }
        if child.worker_node and self.app is not None:
            return Probe(self.app, child.worker_node, **timing)
        if child.health_url:
            return HttpProbe(child.health_url, **timing)
        return None

    def tick(self, *, now: float | None = None) -> None:
        """One round of supervision: restart what exited or stopped consuming."""
        now = now if now is not None else time.monotonic()
        for running in self.running.values():
            code = running.process.poll()
            if code is not None:
                self._restart(running, f"{running.child.name} exited with code {code}")
            elif running.probe is not None and running.probe.check(now=now) == "stalled":
                self._restart(running, self._stall_message(running.child))

    def run(self, *, should_stop: Callable[[], bool], interval: float = 0.5) -> None:
        while not should_stop():
            self.tick()
            time.sleep(interval)

    def stop(self) -> None:
        for running in self.running.values():
            self._signal(running.process, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for running in self.running.values():
            self._wait_or_kill(running.process, deadline)

    def _stall_message(self, child: Child) -> str:
        if child.worker_node:
            return (
                f"{child.name} stopped consuming: its probe was not taken within "
                f"{self.probe_timeout:g}s and it runs no task"
            )
        return f"{child.name} stopped answering {child.health_url}"

    def restarts(self, name: str) -> int:
        return len(self.running[name].restarts)

    # --- internals -----------------------------------------------------------------

    def _spawn(self, child: Child) -> subprocess.Popen:
        return subprocess.Popen(  # noqa: S603 - our own fixed argv
            child.argv, cwd=self.cwd, env=self.env, start_new_session=True
        )

    def _restart(self, running: Running, why: str) -> None:
        now = time.monotonic()
        running.restarts = [at for at in running.restarts if now - at < self.restart_window]
        if len(running.restarts) >= self.max_restarts:
            raise GaveUp(
                f"{why}; it was restarted {len(running.restarts)} times in "
                f"{self.restart_window:g}s, so the platform stops."
            )
        self.report(f"{why}; restarting it.")
        self._signal(running.process, signal.SIGTERM)
        self._wait_or_kill(running.process, time.monotonic() + self.stop_grace)
        running.restarts.append(now)
        running.process = self._spawn(running.child)
        if running.probe is not None:
            running.probe.reset()

    @staticmethod
    def _signal(process: subprocess.Popen, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    def _wait_or_kill(self, process: subprocess.Popen, deadline: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        # The whole group: pool children of a worker that did not shut down cleanly too.
        self._signal(process, signal.SIGKILL)
        if process.poll() is None:
            process.wait()
