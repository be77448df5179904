"""Real Celery worker processes for tests, on the project's broker as production runs them."""

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


DJANGO_APP = "workers.celery"
# What GPU nodes run: imports no Django and no platform code (gpu_inference/gpu_worker.py).
GPU_APP = "gpu_inference.gpu_worker"


def worker_argv(
    queues: str,
    *,
    pool: str = "solo",
    concurrency: int = 1,
    node: str | None = None,
    app: str = DJANGO_APP,
    loglevel: str = "WARNING",
) -> list[str]:
    """The command line of a real `celery worker` on the project's broker."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "-Q",
        queues,
        "--pool",
        pool,
        "-c",
        str(concurrency),
        "-n",
        node or f"test-{queues}-{os.getpid()}@%h",
        "-l",
        loglevel,
    ]


def worker_env(env: dict | None = None) -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}", **(env or {})}


def start_worker(
    queues: str,
    *,
    env: dict | None = None,
    full_env: dict | None = None,
    log: Path | None = None,
    **options,
) -> subprocess.Popen:
    """A real `celery worker` process on the project's broker, as production runs it;
    with `log`, its output (stdout and stderr) goes to that file."""
    output = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(
            worker_argv(queues, **options),
            cwd=ROOT,
            env=full_env or worker_env(env),
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
        )
    finally:
        if output is not None:
            output.close()  # the child holds its own copy


# What only the platform's processes need: a GPU node is started without any of it.
PLATFORM_ONLY_VARIABLES = (
    "DATABASE_URL",
    "SECRET_KEY",
    "API_KEY_HASH_SECRET",
    "DJANGO_SETTINGS_MODULE",
)
# Holds a sitecustomize that makes django, tokenmill, tenants and workers unimportable.
NO_PLATFORM_PATH = ROOT / "tests" / "gpu_node"


def gpu_node_env(env: dict | None = None) -> dict:
    """A GPU node's environment: no database, no secrets, no Django settings, and a
    PYTHONPATH with the repository root only (not platform/), where importing Django or
    a platform package fails."""
    inherited = {
        name: value for name, value in os.environ.items() if name not in PLATFORM_ONLY_VARIABLES
    }
    return {**inherited, "PYTHONPATH": f"{NO_PLATFORM_PATH}{os.pathsep}{ROOT}", **(env or {})}


def store_environment(settings) -> dict[str, str]:
    """The artifact store of the test, as a worker process reads it from its environment
    (S3 endpoint and credentials are in os.environ already, which workers inherit)."""
    return {
        "ARTIFACT_STORE_URL": str(settings.ARTIFACT_STORE_URL),
        "ARTIFACT_CACHE_DIR": str(settings.ARTIFACT_CACHE_DIR),
    }


def worker_database_url() -> str:
    """A DATABASE_URL for a worker process that points at this session's TEST database.

    Call it inside a test that holds the database: only then does the connection name the
    test database (a file for SQLite, see tests/conftest.py). The worker only sees rows
    that are committed, so such tests use `transactional_db`.
    """
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    credentials = f"{user}{password}@" if user else ""
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{credentials}{db['HOST'] or 'localhost'}{port}/{quote(db['NAME'], safe='')}"


def stop_worker(process: subprocess.Popen) -> None:
    stop_workers([process])


def stop_workers(processes: list[subprocess.Popen]) -> None:
    """A warm shutdown of each (SIGTERM), all at once: each worker's wait overlaps the others'."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + 20
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Fleet:
    """The platform's worker processes for one test: a control worker (default and
    control queues, on the test database) and GPU workers on the GPU app with no
    database, Django or platform code at all, which proves they need only the broker
    and the artifact store."""

    def __init__(self, *, store_environment: dict[str, str], trainer: str | None):
        self.common = {**store_environment, "JOB_HEARTBEAT_SECONDS": "1"}
        self.trainer = trainer
        self.processes: list[subprocess.Popen] = []

    def control(self, **env) -> subprocess.Popen:
        return self._start(
            "default,control", {**self.common, "DATABASE_URL": worker_database_url(), **env}
        )

    def gpu(self, *, node: str | None = None, pool: str = "solo", **env) -> subprocess.Popen:
        """A GPU worker on the GPU nodes' own app, in a GPU node's environment (gpu_node_env)."""
        trainer = {"TRAINER": self.trainer} if self.trainer else {}
        process = start_worker(
            "gpu",
            full_env=gpu_node_env({**self.common, **trainer, **env}),
            app=GPU_APP,
            node=node,
            pool=pool,
        )
        self.processes.append(process)
        return process

    def _start(self, queues: str, env: dict) -> subprocess.Popen:
        process = start_worker(queues, env=env)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        stop_workers(self.processes)
