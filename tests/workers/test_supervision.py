"""A worker cannot stall silently: killing a pool child, or a worker that stops
consuming, is detected through a real probe task and work resumes within a bound."""

import os
import signal
import socket
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.finetuning.conftest import make_training_file
from tests.processes import (
    ROOT,
    start_worker,
    stop_worker,
    store_environment,
    worker_argv,
    worker_database_url,
    worker_env,
)
from tokenmill.files import services as file_services
from tokenmill.files.models import File
from tokenmill.files.tasks import validate_file
from workers import probes
from workers.celery import app
from workers.probes import Probe
from workers.supervisor import Child, Supervisor
from workers.tasks import ping

RECOVERY_BOUND = 120  # seconds, on two shared cores; measured recoveries are far below


def node_name(label: str) -> str:
    return f"test-{label}-{os.getpid()}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"


@pytest.fixture
def supervised_worker():
    """A supervised prefork worker (concurrency 2) on the default queue, as runplatform runs it."""
    started: list[Supervisor] = []

    def start(env: dict | None = None) -> Supervisor:
        node = node_name("supervised")
        argv = worker_argv("default", pool="prefork", concurrency=2, node=node)
        supervisor = Supervisor(
            [Child("worker", argv, worker_node=node)],
            cwd=ROOT,
            env=worker_env(env),
            app=app,
            probe_every=1,
            probe_timeout=5,
            first_probe_timeout=90,
            stop_grace=5,
        )
        supervisor.start()
        started.append(supervisor)
        supervise_until(supervisor, lambda: running(supervisor).probe.answered, within=120)
        return supervisor

    yield start
    for supervisor in started:
        supervisor.stop()


def running(supervisor: Supervisor, name: str = "worker"):
    return supervisor.running[name]


def supervise_until(supervisor: Supervisor, condition, *, within: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, f"not within {within}s"
        supervisor.tick()
        time.sleep(0.2)
    return time.monotonic() - started


def pool_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def idle_child_on_the_task_pipe(pid: int) -> int:
    """A pool child blocked reading the task pipe: idle, and holding the pipe's lock if any."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for child in pool_children(pid):
            if Path(f"/proc/{child}/wchan").read_text().strip() == "anon_pipe_read":
                return child
        time.sleep(0.1)
    raise AssertionError("no pool child is waiting on the task pipe")


def work_resumes(supervisor: Supervisor, *, within: float) -> float:
    """Seconds until ONE task, sent now, runs: no resending hides a lost task."""
    started, result = time.monotonic(), ping.apply_async(expires=within)
    while not result.ready():
        assert time.monotonic() - started < within, f"the task did not run within {within}s"
        supervisor.tick()
        time.sleep(0.2)
    return time.monotonic() - started


def validated_through_the_sweep(supervisor: Supervisor, file: File, *, within: float) -> float:
    """Seconds until `file` is validated, running the reaper's sweep as beat would; the
    file's creation is moved back past FILE_VALIDATION_GRACE so the sweep may resend."""
    started = time.monotonic()
    File.unscoped.filter(pk=file.pk).update(created_at=timezone.now() - timedelta(hours=1))
    while File.unscoped.get(pk=file.pk).status == File.Status.UPLOADED:
        assert time.monotonic() - started < within, f"not validated within {within}s"
        supervisor.tick()
        file_services.files_validation_resend()
        time.sleep(0.5)
    return time.monotonic() - started


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_work_a_killed_pool_child_held_is_recovered_by_the_sweep(
    supervised_worker, acme, settings, artifact_store, demo_model_path
):
    """One validation task is sent before the kill, and that exact work must complete.

    On the filesystem broker a task the worker had already taken is unrecoverable by
    design: the message file is removed on pickup, so no acknowledgement can bring it
    back, and the supervisor's restart of the worker (the dead child held the shared
    task pipe's lock) drops what it had reserved. What brings the work back is the
    reaper's sweep, which sends the validation of a file still `uploaded` after
    FILE_VALIDATION_GRACE again: this test asserts that the file gets validated. (On
    Redis the task may also come back by itself after the visibility timeout.)
    """
    settings.FILE_VALIDATION_GRACE = 5
    supervisor = supervised_worker(
        {"DATABASE_URL": worker_database_url(), **store_environment(settings)}
    )
    worker = running(supervisor).process
    child = idle_child_on_the_task_pipe(worker.pid)
    file = make_training_file(acme, status="uploaded")

    validate_file.apply_async(args=[file.pk])  # the one task; a lost one is never resent here
    os.kill(child, signal.SIGKILL)
    recovery = validated_through_the_sweep(supervisor, file, within=RECOVERY_BOUND)

    print(f"the file was validated {recovery:.1f}s after a pool child was killed")
    assert File.unscoped.get(pk=file.pk).status == File.Status.PROCESSED
    # Either Celery replaced the child (Redis) or the supervisor restarted the worker,
    # whose shared task pipe the dead child's lock had blocked (filesystem broker).
    assert supervisor.restarts("worker") in (0, 1)


@pytest.mark.worker
def test_a_worker_that_stops_consuming_is_restarted(supervised_worker):
    supervisor = supervised_worker()
    stalled = running(supervisor).process
    os.kill(stalled.pid, signal.SIGSTOP)  # alive, holding its queues, consuming nothing

    detected = supervise_until(supervisor, lambda: supervisor.restarts("worker") == 1, within=60)
    recovery = work_resumes(supervisor, within=RECOVERY_BOUND)

    print(f"stall detected in {detected:.1f}s; work resumed {recovery:.1f}s later")
    assert stalled.poll() is not None  # the stalled worker is gone, pool and all
    assert running(supervisor).process.pid != stalled.pid
    assert running(supervisor).process.poll() is None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_server_that_stops_answering_is_restarted():
    port = free_port()
    server = Child(
        "server",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        health_url=f"http://127.0.0.1:{port}/",
        start_seconds=30,
    )
    supervisor = Supervisor(
        [server], cwd=ROOT, env=worker_env(), probe_every=0.5, probe_timeout=3, stop_grace=3
    )
    supervisor.start()
    try:
        supervise_until(supervisor, lambda: running(supervisor, "server").probe.answered, within=30)
        stalled = running(supervisor, "server").process
        os.kill(stalled.pid, signal.SIGSTOP)  # its socket still accepts; nothing answers

        detected = supervise_until(
            supervisor, lambda: supervisor.restarts("server") == 1, within=30
        )
        supervise_until(supervisor, lambda: running(supervisor, "server").probe.answered, within=30)
    finally:
        supervisor.stop()
    print(f"a server that stopped answering was restarted after {detected:.1f}s")
    assert stalled.poll() is not None


class FakeResult:
    def __init__(self, ready: bool):
        self._ready = ready

    def ready(self) -> bool:
        return self._ready

    def forget(self) -> None:
        pass


def test_an_unanswered_probe_is_a_stall_only_while_the_worker_runs_nothing(monkeypatch):
    results, busy = [], {"now": True}
    monkeypatch.setattr(
        probes,
        "probe_send",
        lambda app, node, expires: results.append(FakeResult(False)) or results[-1],
    )
    monkeypatch.setattr(probes, "worker_busy", lambda app, node: busy["now"])
    probe = Probe(app, "w@host", every=1, timeout=5, first_timeout=5)

    assert probe.check(now=0) == "waiting"  # sent
    assert probe.check(now=4) == "waiting"
    assert probe.check(now=6) == "waiting"  # unanswered, but every child runs a long task
    busy["now"] = False
    assert probe.check(now=6) == "waiting"  # a new probe
    assert probe.check(now=12) == "stalled"
    assert len(results) == 2


@pytest.mark.worker
def test_the_liveness_probe_command_passes_for_a_consuming_worker(capsys):
    node = node_name("probed")
    worker = start_worker("default", pool="prefork", concurrency=1, node=node)
    try:
        call_command("worker_probe", worker=node, timeout=90)
    finally:
        stop_worker(worker)
    assert capsys.readouterr().out.startswith(f"{node} consumed its probe in ")


@pytest.mark.worker
def test_the_liveness_probe_command_fails_for_a_worker_that_consumes_nothing():
    with pytest.raises(CommandError) as raised:
        call_command("worker_probe", worker="nobody", timeout=1)
    assert str(raised.value) == (
        f"nobody@{socket.gethostname()} did not consume its probe within 1s and runs no task: "
        "it has stopped consuming"
    )


def test_runplatform_supervises_a_table_of_named_processes():
    from workers.management.commands.runplatform import platform_children

    children = {child.name: child for child in platform_children(host="127.0.0.1", port=8123)}
    assert list(children) == [
        "web",
        "worker-default",
        "worker-control",
        "worker-batch",
        "worker-gpu",
        "beat",
    ]
    host = socket.gethostname()
    probed = {name: child.worker_node for name, child in children.items() if child.worker_node}
    assert probed == {
        "worker-default": f"default@{host}",
        "worker-control": f"control@{host}",
        "worker-batch": f"batch@{host}",
        "worker-gpu": f"gpu@{host}",
    }
    # Reports and the reaper have a worker of their own: they never wait behind validation.
    queues = {
        name: child.argv[child.argv.index("-Q") + 1]
        for name, child in children.items()
        if child.worker_node
    }
    assert queues == {
        "worker-default": "default",
        "worker-control": "control",
        "worker-batch": "batch",
        "worker-gpu": "gpu",
    }
    # GPU nodes run their own app, which imports no Django and no platform code.
    apps = {
        name: child.argv[child.argv.index("-A") + 1]
        for name, child in children.items()
        if "-A" in child.argv
    }
    assert apps == {
        "worker-default": "workers.celery",
        "worker-control": "workers.celery",
        "worker-batch": "workers.celery",
        "worker-gpu": "gpu_inference.gpu_worker",
        "beat": "workers.celery",
    }
