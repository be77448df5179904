"""A validation that keeps killing its worker is given up after TASK_MAX_DELIVERIES, with the
file in `error` saying why, and the worker goes on serving everyone else."""

import os
import subprocess
import sys
import time

import pytest
from django.conf import settings

from tests.files.helpers import chat_lines, jsonl
from tests.files.worker_crash import CRASHING_FILENAME
from tests.processes import ROOT, stop_worker, store_environment, worker_database_url
from tokenmill.files.models import File

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def start_prefork_worker(env: dict) -> subprocess.Popen:
    """A default-queue worker with a pool process that can be killed under its parent."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "workers.celery", "worker"),
            *("-Q", "default", "--pool", "prefork", "-c", "1", "-l", "WARNING"),
            *("-n", f"test-crash-{os.getpid()}@%h", "--include", "tests.files.worker_crash"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}", **env},
    )


def wait_validated(file: File, worker: subprocess.Popen, seconds: float = 120) -> File:
    deadline = time.monotonic() + seconds
    while file.status == File.Status.UPLOADED and time.monotonic() < deadline:
        assert worker.poll() is None, "the worker itself died"
        time.sleep(0.2)
        file.refresh_from_db()
    return file


def test_a_validation_that_kills_its_worker_is_given_up_after_the_limit(
    upload, acme, artifact_store, demo_model_path, tmp_path
):
    crashes = tmp_path / "crashes"
    crashes.mkdir()
    worker = start_prefork_worker(
        {
            "DATABASE_URL": worker_database_url(),
            **store_environment(settings),
            "MODEL_ROOT": str(settings.MODEL_ROOT),
            "TASK_MAX_DELIVERIES": "2",
            "CRASH_LOG_DIR": str(crashes),
        }
    )
    try:
        response = upload(jsonl(chat_lines(12)), name=CRASHING_FILENAME)
        assert response.json()["status"] == "uploaded"
        crashing = wait_validated(File.unscoped.get(public_id=response.json()["id"]), worker)

        assert crashing.status == File.Status.ERROR
        assert crashing.status_details == (
            "Validation stopped: checking this file made the validation worker fail 2 times, "
            "so it was not tried again. Look for very long lines or examples, and contact "
            "support if it persists."
        )
        assert len(list(crashes.iterdir())) == 2  # delivered twice, then given up unrun

        fine = upload(jsonl(chat_lines(12)), name="fine.jsonl")
        validated = wait_validated(File.unscoped.get(public_id=fine.json()["id"]), worker)
        assert validated.status == File.Status.PROCESSED, validated.status_details
    finally:
        stop_worker(worker)
