import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start_worker(queues: str, *, env: dict | None = None) -> subprocess.Popen:
    """A real `celery worker` process on the project's broker, as production runs it."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery",
            "worker",
            "-Q",
            queues,
            "--pool",
            "solo",
            "-n",
            f"test-{queues}-{os.getpid()}@%h",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}", **(env or {})},
    )


def stop_worker(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def default_worker():
    process = start_worker("default")
    yield process
    stop_worker(process)
