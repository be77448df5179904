"""Fine-tuning through real Celery worker processes and the real broker.

The control worker (default + control queues) uses the test database; the GPU
worker is given a database URL that cannot work, which proves it needs only the
broker and the artifact store. The trainer is the fake one (no GPU here).
"""

import os
import signal
import socket
import time

import pytest

from tests.finetuning.conftest import FAKE_TRAINER, make_training_file
from tests.processes import PLATFORM_ONLY_VARIABLES, Fleet, gpu_node_env, store_environment
from tokenmill.finetuning import scheduling
from tokenmill.finetuning.models import FineTuningJob
from workers.celery import app as platform_app
from workers.probes import probe_once

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fleet(settings, artifact_store, demo_model_path):
    fleet = Fleet(store_environment=store_environment(settings), trainer=FAKE_TRAINER)
    yield fleet
    fleet.stop()


def wait_for(predicate, *, timeout=90.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def job_status(job_id: str) -> FineTuningJob:
    return FineTuningJob.unscoped.get(public_id=job_id)


def create_job(alice_api, acme):
    file = make_training_file(acme)
    response = alice_api.post(
        "/v1/fine_tuning/jobs",
        {"model": "tiny-chat", "training_file": file.public_id},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()["id"]


def messages(job_id: str) -> list[str]:
    return list(
        job_status(job_id).events.order_by("created_at", "id").values_list("message", flat=True)
    )


def test_a_job_runs_through_the_control_and_gpu_queues(fleet, alice_api, acme):
    fleet.control()
    fleet.gpu()
    job_id = create_job(alice_api, acme)
    job = wait_for(
        lambda: (j := job_status(job_id)).is_terminal and j.released_at and j,
        what="the job to finish",
    )
    assert job.status == "succeeded", messages(job_id)
    assert (
        job.fine_tuned_model
        and job.trained_tokens == 20 * 10 * job.resolved_hyperparameters["n_epochs"]
    )
    assert job.checkpoints.count() == 2
    assert "Fine-tuning job started" in messages(job_id)


def test_a_gpu_node_trains_without_django_the_database_or_platform_code(fleet, alice_api, acme):
    env = gpu_node_env()
    assert not set(PLATFORM_ONLY_VARIABLES) & set(env)
    assert "platform" not in [os.path.basename(entry) for entry in env["PYTHONPATH"].split(":")]
    node = f"gpu-node-{os.getpid()}@{socket.gethostname()}"
    fleet.control()
    gpu = fleet.gpu(node=node)
    job_id = create_job(alice_api, acme)
    job = wait_for(
        lambda: (j := job_status(job_id)).is_terminal and j.released_at and j,
        what="the job to finish",
    )
    assert job.status == "succeeded", messages(job_id)
    assert job.trained_tokens and job.fine_tuned_model and job.checkpoints.count() == 2
    # The control worker recorded the GPU node's reports: started, metrics, the outcome.
    assert "Fine-tuning job started" in messages(job_id)
    assert job.events.filter(type="metrics").exists()
    # The platform's probes reach it like any other worker (runplatform, worker_probe).
    healthy, found = probe_once(platform_app, node, timeout=20)
    assert healthy, found
    assert gpu.poll() is None


def test_a_killed_worker_does_not_leave_the_job_running(fleet, alice_api, acme, settings):
    fleet.control()
    doomed = fleet.gpu(FAKE_TRAINER_STEPS="60", FAKE_TRAINER_STEP_SECONDS="0.5")
    job_id = create_job(alice_api, acme)
    wait_for(lambda: job_status(job_id).status == "running", what="the job to start")
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()

    settings.JOB_HEARTBEAT_TIMEOUT = 2
    time.sleep(3)
    counts = scheduling.requeue_or_fail_lost_jobs()  # what beat's finetuning.reap runs
    assert counts["requeued"] == 1
    job = job_status(job_id)
    assert job.status == "queued"
    assert "stopped responding; the job is queued again (attempt 2 of 3)" in messages(job_id)[-1]

    scheduling.jobs_dispatch()
    fleet.gpu()
    job = wait_for(
        lambda: (j := job_status(job_id)).released_at and j, what="the retried job to finish"
    )
    assert job.status == "succeeded" and job.attempt == 2


def test_the_reaper_fails_a_job_after_its_last_attempt(
    alice_api, acme, settings, artifact_store, demo_model_path
):
    job_id = create_job(alice_api, acme)
    settings.JOB_MAX_ATTEMPTS = 1
    FineTuningJob.unscoped.filter(public_id=job_id).update(
        status="running",
        attempt=1,
        dispatched_at=FineTuningJob.unscoped.get(public_id=job_id).created_at,
        last_heartbeat_at=FineTuningJob.unscoped.get(public_id=job_id).created_at,
    )
    settings.JOB_HEARTBEAT_TIMEOUT = 2
    time.sleep(2.1)
    assert scheduling.requeue_or_fail_lost_jobs()["failed"] == 1
    job = job_status(job_id)
    assert job.status == "failed"
    assert job.error["code"] == "worker_lost"


def test_cancelling_a_running_job_stops_it_within_a_step(fleet, alice_api, acme):
    fleet.control()
    fleet.gpu(FAKE_TRAINER_STEPS="200", FAKE_TRAINER_STEP_SECONDS="0.2")
    job_id = create_job(alice_api, acme)
    wait_for(lambda: job_status(job_id).status == "running", what="the job to start")
    assert alice_api.post(f"/v1/fine_tuning/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    job = wait_for(
        lambda: (j := job_status(job_id)).released_at and j, timeout=30, what="the worker to stop"
    )
    assert job.status == "cancelled"
    steps = job.events.filter(type="metrics").count()
    assert steps < 200


def test_a_job_cancelled_while_queued_never_starts(fleet, alice_api, acme):
    fleet.control()  # no GPU worker yet: the job waits on the gpu queue
    job_id = create_job(alice_api, acme)
    wait_for(lambda: job_status(job_id).dispatched_at, what="the job to be dispatched")
    alice_api.post(f"/v1/fine_tuning/jobs/{job_id}/cancel")
    fleet.gpu()
    job = wait_for(
        lambda: (j := job_status(job_id)).released_at and j, what="the GPU worker to pass on it"
    )
    assert job.status == "cancelled"
    assert "Fine-tuning job started" not in messages(job_id)
    assert not job.events.filter(type="metrics").exists()
