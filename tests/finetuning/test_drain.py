"""A GPU worker drained by SIGTERM (a deploy, a scale-down) hands its job back, and the
next worker resumes it from the checkpoint where it stopped, not from step 0.

Real Celery worker processes on the project's broker, the real trainer on the demo
model; the GPU workers run in a GPU node's environment (no Django, no database).
"""

import os
import signal
import time

import pytest

from tests.finetuning.conftest import chat_examples, make_training_file
from tests.finetuning.test_workers import job_status, messages, wait_for
from tests.processes import Fleet, store_environment
from tokenmill.finetuning.models import FineTuningJob

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EPOCHS, BATCH = 10, 1  # 20 examples, 18 trained (2 held out): 180 steps, several seconds
DRAIN_AFTER = 30  # steps: the drain comes with five sixths of the job still to train


@pytest.fixture
def fleet(settings, artifact_store, demo_model_path):
    # The real trainer.
    fleet = Fleet(store_environment=store_environment(settings), trainer=None)
    yield fleet
    fleet.stop()


def step_metrics(job: FineTuningJob, attempt: int) -> list[int]:
    return sorted(
        data["step"]
        for data in job.events.filter(type="metrics", attempt=attempt).values_list(
            "data", flat=True
        )
        if data.get("kind") == "step"
    )


# solo: the task runs in the worker's main process, which Celery's SIGTERM handler runs
# in; prefork (what production runs): in a child, which learns of it from the drain flag.
@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_a_drained_worker_hands_back_and_the_next_resumes_from_its_checkpoint(
    fleet, alice_api, acme, pool
):
    fleet.control()
    first = fleet.gpu(node=f"gpu-first-{os.getpid()}@%h", pool=pool)
    file = make_training_file(acme, chat_examples(20))
    response = alice_api.post(
        "/v1/fine_tuning/jobs",
        {
            "model": "tiny-chat",
            "training_file": file.public_id,
            "hyperparameters": {"n_epochs": EPOCHS, "batch_size": BATCH},
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    job_id = response.json()["id"]
    wait_for(
        lambda: len(step_metrics(job_status(job_id), 1)) >= DRAIN_AFTER,
        timeout=180,
        what=f"the first worker to train {DRAIN_AFTER} steps",
    )

    first.send_signal(signal.SIGTERM)  # Celery's warm shutdown, as `docker stop` and k8s send
    began = time.monotonic()
    assert first.wait(timeout=60) == 0
    drain_seconds = time.monotonic() - began
    job = wait_for(
        lambda: (j := job_status(job_id)).attempt == 2 and j, what="the job to be handed back"
    )
    assert job.status == "queued" and job.handbacks == 1
    handed_back_at = max(step_metrics(job, 1))
    per_epoch = (20 - job.holdout["count"]) // BATCH
    assert handed_back_at < EPOCHS * per_epoch, "the job ended before the drain"
    assert (
        "The worker running the job was stopped (a drain); the job is queued again and it "
        f"resumes from its checkpoint at step {handed_back_at}."
    ) in messages(job_id)

    fleet.gpu(node=f"gpu-second-{os.getpid()}@%h")
    job = wait_for(
        lambda: (j := job_status(job_id)).released_at and j,
        timeout=300,
        what="the second worker to finish the job",
    )
    assert job.status == "succeeded", messages(job_id)
    assert job.attempt == 2
    assert f"Resumed from the checkpoint at step {handed_back_at} " in " ".join(messages(job_id))
    # The second attempt trained only the steps after the checkpoint; the first attempt's
    # steps up to it stay, so the loss curve is whole and nothing was trained twice.
    assert step_metrics(job, 2) == list(range(handed_back_at + 1, EPOCHS * per_epoch + 1))
    assert step_metrics(job, 1) == list(range(1, handed_back_at + 1))
    checkpoints = list(job.checkpoints.order_by("step_number"))
    assert {c.attempt for c in checkpoints} == {2}  # carried over, then the rest
    assert [c.epoch for c in checkpoints if c.step_number % per_epoch == 0] == list(
        range(1, EPOCHS + 1)
    )
    assert handed_back_at in [c.step_number for c in checkpoints]
    assert all(c.artifact_key.startswith(f"jobs/{job_id}/attempt-2/") for c in checkpoints)
    assert job.trained_tokens == job.estimated_trained_tokens  # each token once, as estimated
    print(f"drain: handed back at step {handed_back_at} in {drain_seconds:.1f}s")
