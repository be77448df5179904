"""The supervisor's restart, give-up and stop logic, on cheap fake servers (no vLLM)."""

import json
import sys
import time
from pathlib import Path

import pytest

from gpu_inference.serving.launcher import ServerSpec
from gpu_inference.serving.servers import supervise
from gpu_inference.serving.supervisor import Backoff, State, Supervisor, read_status

QUICK = Backoff(initial=0.05, maximum=0.2)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.fixture
def supervisors():
    started: list[Supervisor] = []

    def make(command, **options) -> Supervisor:
        options.setdefault("probe", lambda: True)
        options.setdefault("backoff", QUICK)
        options.setdefault("poll_interval", 0.05)
        options.setdefault("stop_timeout", 5)
        supervisor = Supervisor("fake", command, **options)
        started.append(supervisor)
        return supervisor

    yield make
    for supervisor in started:
        supervisor.stop()


def test_a_killed_server_is_restarted_and_ready_again(supervisors, tmp_path):
    supervisor = supervisors(
        python("import time; time.sleep(600)"), log_path=tmp_path / "fake.log"
    ).start()
    first = supervisor.wait_ready(10)
    assert first.state == State.READY
    supervisor.kill()
    deadline = time.monotonic() + 10
    while supervisor.status.restarts < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    again = supervisor.wait_for((State.READY,), 10)
    assert again.state == State.READY and again.restarts == 1
    assert again.pid != first.pid
    assert not alive(first.pid)


def test_readiness_waits_for_the_probe(supervisors, tmp_path):
    ready_flag = tmp_path / "ready"
    supervisor = supervisors(
        python("import time; time.sleep(600)"),
        probe=ready_flag.exists,
        log_path=tmp_path / "fake.log",
        state_file=tmp_path / "state" / "fake.json",
    ).start()
    assert supervisor.wait_ready(0.5).state == State.STARTING
    assert read_status(tmp_path / "state" / "fake.json")["state"] == "starting"
    ready_flag.touch()
    status = supervisor.wait_ready(10)
    assert status.state == State.READY and status.ready_after_seconds is not None
    assert json.loads((tmp_path / "state" / "fake.json").read_text())["state"] == "ready"


def test_a_server_that_cannot_start_is_given_up_with_its_reason(supervisors, tmp_path):
    crash = (
        "import sys; print('RuntimeError: this CPU is not supported', file=sys.stderr); sys.exit(3)"
    )
    supervisor = supervisors(
        python(crash), probe=lambda: False, log_path=tmp_path / "fake.log", max_start_failures=2
    ).start()
    status = supervisor.wait_for((State.FAILED,), 10)
    assert status.state == State.FAILED
    assert status.reason == (
        "gave up after 2 failed starts; last: exited with code 3: RuntimeError: this CPU is not supported"
    )


def test_an_illegal_instruction_is_explained(supervisors, tmp_path):
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGILL)"
    supervisor = supervisors(
        python(crash), probe=lambda: False, log_path=tmp_path / "fake.log", max_start_failures=1
    ).start()
    status = supervisor.wait_for((State.FAILED,), 10)
    assert "killed by signal SIGILL (illegal instruction: this CPU lacks an instruction set" in (
        status.reason
    )


def test_a_server_given_up_on_starts_again_on_restart(supervisors, tmp_path):
    flag = tmp_path / "works-now"
    code = f"import pathlib, sys, time; sys.exit(1) if not pathlib.Path({str(flag)!r}).exists() else time.sleep(600)"
    supervisor = supervisors(
        python(code), log_path=tmp_path / "fake.log", max_start_failures=1, probe=flag.exists
    ).start()
    assert supervisor.wait_for((State.FAILED,), 10).state == State.FAILED
    flag.touch()
    supervisor.restart()
    assert supervisor.wait_for((State.READY,), 10).state == State.READY


def test_stop_takes_the_whole_process_group_down(supervisors, tmp_path):
    # Like vLLM's API server and its engine process: a server with a child of its own.
    pids = tmp_path / "pids"
    code = (
        "import os, subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}'); time.sleep(600)"
    )
    supervisor = supervisors(python(code), probe=pids.exists, log_path=tmp_path / "fake.log")
    supervisor.start()
    assert supervisor.wait_ready(10).state == State.READY
    server, grandchild = (int(pid) for pid in pids.read_text().split())
    assert alive(server) and alive(grandchild)
    supervisor.stop()
    assert supervisor.status.state == State.STOPPED
    deadline = time.monotonic() + 5
    while (alive(server) or alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(server) and not alive(grandchild)


def test_a_missing_vllm_environment_is_reported_not_raised(tmp_path):
    spec = ServerSpec(model=str(tmp_path), served_name="tiny-chat", port=8001)
    supervisor = supervise("vllm-chat", spec, log_dir=tmp_path, python=tmp_path / "no-python")
    status = supervisor.status
    assert status.state == State.FAILED
    assert status.reason == (
        f"vLLM's environment is missing ({tmp_path / 'no-python'}); run `make vllm` to install it."
    )


def test_backoff_grows_to_its_maximum():
    backoff = Backoff(initial=1, factor=2, maximum=10)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]
