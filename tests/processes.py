"""Real Celery worker processes for tests, on the project's broker as production runs them."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def worker_argv(
    queues: str, *, pool: str = "solo", concurrency: int = 1, node: str | None = None
) -> list[str]:
    """The command line of a real `celery worker` on the project's broker."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery",
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
        "WARNING",
    ]


def worker_env(env: dict | None = None) -> dict:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}", **(env or {})}


def start_worker(queues: str, *, env: dict | None = None, **options) -> subprocess.Popen:
    """A real `celery worker` process on the project's broker, as production runs it."""
    return subprocess.Popen(worker_argv(queues, **options), cwd=ROOT, env=worker_env(env))


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
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Fleet:
    """The platform's worker processes for one test: a control worker (default and
    control queues, on the test database) and GPU workers given a database URL that
    cannot work, which proves they need only the broker and the artifact store."""

    def __init__(self, *, artifact_root: Path, trainer: str | None):
        self.common = {"ARTIFACT_ROOT": str(artifact_root), "JOB_HEARTBEAT_SECONDS": "1"}
        self.trainer = trainer
        self.processes: list[subprocess.Popen] = []

    def control(self, **env) -> subprocess.Popen:
        return self._start(
            "default,control", {**self.common, "DATABASE_URL": worker_database_url(), **env}
        )

    def gpu(self, **env) -> subprocess.Popen:
        unreachable = (
            "sqlite:////nonexistent/tokenmill.sqlite3"
            if connection.vendor == "sqlite"
            else "postgres://nobody@127.0.0.1:9/none"
        )
        trainer = {"TRAINER": self.trainer} if self.trainer else {}
        return self._start("gpu", {**self.common, "DATABASE_URL": unreachable, **trainer, **env})

    def _start(self, queues: str, env: dict) -> subprocess.Popen:
        process = start_worker(queues, env=env)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                stop_worker(process)
