"""The official `openai` SDK against a live server and real worker processes:
upload a dataset, fine-tune tiny-chat on the CPU for real, and use the result.

files.create -> fine_tuning.jobs.create -> poll retrieve until succeeded ->
list_events -> checkpoints.list -> the model appears in models.list().
"""

import json
import time

import pytest

from tests.processes import Fleet, store_environment

pytestmark = [pytest.mark.worker, pytest.mark.slow]


@pytest.fixture
def fleet(transactional_db, settings, artifact_store, demo_model_path):
    # The real trainer.
    fleet = Fleet(store_environment=store_environment(settings), trainer=None)
    fleet.control()
    fleet.gpu()
    yield fleet
    fleet.stop()


@pytest.fixture
def dataset(tmp_path):
    rooms = ["library", "kitchen", "garden", "attic", "cellar"]
    lines = [
        {
            "messages": [
                {"role": "system", "content": "You are the house guide."},
                {"role": "user", "content": f"Where is the key number {n}?"},
                {"role": "assistant", "content": f"Key {n} is in the {rooms[n % len(rooms)]}."},
            ]
        }
        for n in range(20)
    ]
    path = tmp_path / "house.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_fine_tune_tiny_chat_with_the_openai_sdk(sdk, alice_key, dataset, fleet):
    client = sdk(alice_key)
    with dataset.open("rb") as handle:
        training_file = client.files.create(file=handle, purpose="fine-tune")

    job = client.fine_tuning.jobs.create(
        model="tiny-chat",
        training_file=training_file.id,
        suffix="house",
        hyperparameters={"n_epochs": 3},
    )
    assert job.status == "validating_files"

    deadline = time.monotonic() + 120
    while job.status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"job still {job.status} after 120 s"
        time.sleep(0.5)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith("ft:tiny-chat:acme:house:")
    assert job.hyperparameters.n_epochs == 3
    assert job.trained_tokens == job.model_extra["estimated_trained_tokens"] > 0

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert events[0].message == "The job has successfully completed"
    losses = [
        e.data["train_loss"]
        for e in reversed(events)
        if e.type == "metrics" and "train_loss" in e.data
    ]
    assert len(losses) >= 3
    assert losses[-1] < losses[0], losses

    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert len(checkpoints) == 3  # one per epoch
    assert all(c.fine_tuned_model_checkpoint.startswith(job.fine_tuned_model) for c in checkpoints)

    assert job.fine_tuned_model in [model.id for model in client.models.list()]
