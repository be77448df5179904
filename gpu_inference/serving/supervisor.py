"""Keeps one model server process running: start, readiness, restart with backoff, stop.

The supervisor owns the server's whole process group (vLLM starts an engine
process of its own), so stopping or restarting never leaves an orphan behind.
Readiness is what a client needs: /health answers, then /v1/models lists the
served name. A server that keeps dying before it is ready (an unsupported CPU, a
broken model folder) is given up on after a few tries with a reason taken from its
log; the rest of the platform keeps running and can show that reason.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path

logger = logging.getLogger(__name__)


class State(StrEnum):
    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Status:
    name: str
    state: State
    reason: str = ""
    pid: int | None = None
    restarts: int = 0
    since: float = 0.0  # Unix time of the last change
    ready_after_seconds: float | None = None


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, failures: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(0, failures - 1))


# What a signal that killed the server most likely means, in words an operator can act on.
_SIGNAL_HINTS = {
    signal.SIGILL: "illegal instruction: this CPU lacks an instruction set vLLM's build needs",
    signal.SIGKILL: "out of memory, or killed by an operator",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
}


_ERROR_MARKS = ("Error", "error:", "Illegal instruction", "Aborted", "Killed")


def exit_reason(returncode: int, log_tail: str) -> str:
    if returncode < 0:
        number = -returncode
        name = (
            signal.Signals(number).name if number in signal.Signals._value2member_map_ else number
        )
        what = f"killed by signal {name}"
        hint = _SIGNAL_HINTS.get(number)
        reason = f"{what} ({hint})" if hint else what
    else:
        reason = f"exited with code {returncode}"
    last_error = _last_error_line(log_tail)
    return f"{reason}: {last_error}" if last_error else reason


def _last_error_line(log_tail: str) -> str:
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if any(mark in line for mark in _ERROR_MARKS):
            return line[-300:]
    return ""


def read_tail(path: Path, size: int = 8192) -> str:
    try:
        with path.open("rb") as log:
            log.seek(max(0, path.stat().st_size - size))
            return log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class Supervisor:
    """Runs `command` until stopped; `probe()` says when the server is ready.

    `on_change(status)` is called on every change of state (from the supervisor's
    thread); `state_file`, when given, always holds the current status as JSON, for
    processes that cannot share memory with this one.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        probe: Callable[[], bool],
        log_path: Path,
        backoff: Backoff = Backoff(),
        start_timeout: float = 600.0,
        max_start_failures: int = 3,
        poll_interval: float = 0.5,
        stop_timeout: float = 20.0,
        on_change: Callable[[Status], None] | None = None,
        state_file: Path | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = env
        self.probe = probe
        self.log_path = Path(log_path)
        self.backoff = backoff
        self.start_timeout = start_timeout
        self.max_start_failures = max_start_failures
        self.poll_interval = poll_interval
        self.stop_timeout = stop_timeout
        self.on_change = on_change
        self.state_file = state_file
        self._status = Status(name=name, state=State.STOPPED, since=time.time())
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    # --- control -------------------------------------------------------------------

    def start(self) -> Supervisor:
        if self._thread and self._thread.is_alive():
            return self
        self._stopping.clear()
        self._set(State.STARTING, reason="")
        # A script that ends without stop() must not leave a server behind.
        atexit.register(self.stop)
        self._thread = threading.Thread(
            target=self._run, name=f"supervise-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the server and its children, and the supervision; returns when they are gone."""
        atexit.unregister(self.stop)
        self._stopping.set()
        self._wake.set()
        if self._thread:
            self._thread.join(self.stop_timeout + 10)
        self._terminate()

    def kill(self) -> None:
        """Kill the running server abruptly, as a crash would (the supervisor restarts it)."""
        process = self._process
        if process and process.poll() is None:
            _signal_group(process, signal.SIGKILL)

    def restart(self) -> None:
        """Stop the server gracefully and start it again (also after it was given up on)."""
        if self._thread is None or not self._thread.is_alive():
            self.start()
            return
        process = self._process
        self._wake.set()
        if process and process.poll() is None:
            _signal_group(process, signal.SIGTERM)

    def mark_unavailable(self, reason: str) -> None:
        """Record why the server cannot run here, without starting it."""
        self._set(State.FAILED, reason=reason, pid=None)

    @property
    def status(self) -> Status:
        with self._lock:
            return self._status

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process else None

    def wait_for(self, states: Sequence[State], timeout: float) -> Status:
        """Block until the state is one of `states`; returns the status (check it: it may be a timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._status.state not in states:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return self._status

    def wait_ready(self, timeout: float) -> Status:
        return self.wait_for((State.READY, State.FAILED, State.STOPPED), timeout)

    # --- the supervising thread -------------------------------------------------------

    def _run(self) -> None:
        failures = restarts = 0
        while not self._stopping.is_set():
            self._wake.clear()
            ready, reason = self._run_once(restarts)
            if self._stopping.is_set():
                break
            failures = 0 if ready else failures + 1
            if failures >= self.max_start_failures:
                self._set(
                    State.FAILED,
                    reason=f"gave up after {failures} failed starts; last: {reason}",
                    pid=None,
                )
                logger.error("%s is unavailable: %s", self.name, self.status.reason)
                # Wait for an explicit restart() (or stop()); a broken machine stays quiet.
                self._wake.wait()
                failures = 0
                continue
            restarts += 1
            delay = self.backoff.delay(max(failures, 1))
            self._set(State.RESTARTING, reason=f"{reason}; restarting in {delay:.0f}s", pid=None)
            logger.warning("%s %s", self.name, self.status.reason)
            self._wake.wait(delay)
        self._terminate()
        self._set(State.STOPPED, reason="", pid=None)

    def _run_once(self, restarts: int) -> tuple[bool, str]:
        """One life of the server: returns (was it ever ready, why it ended)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(  # noqa: S603 - argv built by the launcher
                    self.command,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: stopped as a whole, never orphaned
                )
        except OSError as error:
            return False, f"cannot start: {error}"
        process = self._process
        self._set(State.STARTING, reason="", pid=process.pid, restarts=restarts)
        ready = False
        while not self._stopping.is_set() and not self._wake.is_set():
            if process.poll() is not None:
                break
            if not ready:
                if self._probe():
                    ready = True
                    took = time.monotonic() - started
                    self._set(State.READY, reason="", ready_after_seconds=round(took, 1))
                    logger.info("%s is ready after %.1fs (pid %s)", self.name, took, process.pid)
                elif time.monotonic() - started > self.start_timeout:
                    self._terminate()
                    return (
                        False,
                        f"not ready after {self.start_timeout:.0f}s (log: {self.log_path})",
                    )
            self._wake.wait(self.poll_interval)
        if self._stopping.is_set():
            return ready, "stopped"
        if self._wake.is_set() and process.poll() is None:
            self._terminate()
            return ready, "restart requested"
        process.wait()
        # Its engine process may outlive it: clear the group before the next start.
        _signal_group(process, signal.SIGKILL)
        return ready, exit_reason(process.returncode, read_tail(self.log_path))

    def _probe(self) -> bool:
        try:
            return bool(self.probe())
        except Exception:
            return False

    def _terminate(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        _signal_group(process, signal.SIGKILL)  # whatever of its group is left

    def _set(self, state: State, **changes) -> None:
        with self._changed:
            self._status = replace(self._status, state=state, since=time.time(), **changes)
            status = self._status
            # Under the lock, before anyone waiting is woken: a waiter that sees the new
            # state finds it in the file too, and two changes cannot land out of order.
            if self.state_file:
                write_status(self.state_file, status)
            self._changed.notify_all()
        if self.on_change:
            try:
                self.on_change(status)
            except Exception:
                logger.exception("reporting the state of %s failed", self.name)


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def write_status(path: Path, status: Status) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({**asdict(status), "state": str(status.state)}))
    os.replace(partial, path)


def read_status(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
