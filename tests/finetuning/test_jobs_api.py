import pytest

from tenants.models import ApiKey
from tests.finetuning.conftest import make_training_file
from tokenmill.files.models import File
from tokenmill.finetuning.models import FineTunedModel, FineTuningJob


@pytest.fixture
def run_commits(django_capture_on_commit_callbacks):
    """Run what a request leaves for after commit (tasks run in-process, eagerly)."""

    def run(call):
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return run


def create(client, **body):
    return client.post("/v1/fine_tuning/jobs", {"model": "tiny-chat", **body}, format="json")


def test_a_job_runs_from_validating_files_to_succeeded(
    alice_api, training_file, fake_trainer, run_commits
):
    response = run_commits(
        lambda: create(alice_api, training_file=training_file.public_id, suffix="support")
    )
    assert response.status_code == 200, response.content
    created = response.json()
    assert created["object"] == "fine_tuning.job"
    assert created["id"].startswith("ftjob-")
    assert created["status"] == "validating_files"
    assert created["training_file"] == training_file.public_id
    assert created["user_provided_suffix"] == "support"

    job = alice_api.get(f"/v1/fine_tuning/jobs/{created['id']}").json()
    assert job["status"] == "succeeded", job
    fragment = created["id"].removeprefix("ftjob-")[:8]
    assert job["fine_tuned_model"] == f"ft:tiny-chat:acme:support:{fragment}"
    assert job["trained_tokens"] == 20 * 10 * job["hyperparameters"]["n_epochs"]
    assert job["estimated_trained_tokens"] > 0
    assert isinstance(job["hyperparameters"]["batch_size"], int)
    assert job["finished_at"] >= job["created_at"]

    events = alice_api.get(f"/v1/fine_tuning/jobs/{created['id']}/events?limit=100").json()["data"]
    messages = [event["message"] for event in reversed(events)]
    assert messages[0] == f"Validating training file: {training_file.public_id}"
    assert "Fine-tuning job queued" in messages and "Fine-tuning job started" in messages
    assert messages[-1] == "The job has successfully completed"
    metrics = [event for event in events if event["type"] == "metrics"]
    assert [m["data"]["step"] for m in reversed(metrics)] == [1, 2, 3, 4]
    assert metrics[0]["message"].startswith("Step 4/4: training loss=")

    checkpoints = alice_api.get(f"/v1/fine_tuning/jobs/{created['id']}/checkpoints").json()["data"]
    assert [c["step_number"] for c in checkpoints] == [4, 2]
    assert checkpoints[0]["fine_tuned_model_checkpoint"] == f"{job['fine_tuned_model']}:ckpt-step-4"
    assert checkpoints[0]["object"] == "fine_tuning.job.checkpoint"

    model_ids = [m["id"] for m in alice_api.get("/v1/models").json()["data"]]
    assert model_ids == ["all-MiniLM-L6-v2", "tiny-chat", job["fine_tuned_model"]]


def test_fine_tuned_models_are_their_tenants_alone_and_can_be_deleted(
    alice_api, charlie_api, training_file, fake_trainer, run_commits
):
    job_id = run_commits(lambda: create(alice_api, training_file=training_file.public_id)).json()[
        "id"
    ]
    model_id = FineTuningJob.unscoped.get(public_id=job_id).fine_tuned_model
    assert model_id.startswith("ft:tiny-chat:acme::")
    assert model_id not in [m["id"] for m in charlie_api.get("/v1/models").json()["data"]]
    assert charlie_api.get(f"/v1/models/{model_id}").status_code == 404
    assert charlie_api.delete(f"/v1/models/{model_id}").status_code == 404
    assert alice_api.get(f"/v1/models/{model_id}").json()["owned_by"].startswith("org-")
    deleted = run_commits(lambda: alice_api.delete(f"/v1/models/{model_id}"))
    assert deleted.json() == {"id": model_id, "object": "model", "deleted": True}
    assert not FineTunedModel.unscoped.exists()
    assert alice_api.get(f"/v1/models/{model_id}").status_code == 404


def test_base_models_cannot_be_deleted(alice_api):
    response = alice_api.delete("/v1/models/tiny-chat")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "model_not_deletable"


def test_a_failing_trainer_fails_the_job_with_its_code(
    alice_api, training_file, fake_trainer, run_commits
):
    fake_trainer.setenv("FAKE_TRAINER_MODE", "fail")
    job_id = run_commits(lambda: create(alice_api, training_file=training_file.public_id)).json()[
        "id"
    ]
    job = alice_api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "failed"
    assert job["error"] == {
        "code": "out_of_memory",
        "message": "the device ran out of memory; try a smaller batch_size",
        "param": None,
    }
    assert job["fine_tuned_model"] is None


def test_a_crashing_trainer_fails_the_job_as_an_internal_error(
    alice_api, training_file, fake_trainer, run_commits
):
    fake_trainer.setenv("FAKE_TRAINER_MODE", "crash")
    job_id = run_commits(lambda: create(alice_api, training_file=training_file.public_id)).json()[
        "id"
    ]
    error = alice_api.get(f"/v1/fine_tuning/jobs/{job_id}").json()["error"]
    assert error["code"] == "internal_error"
    assert error["message"] == (
        "The training stopped because of an internal error (RuntimeError); "
        "ask support to retry the job."
    )


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": "gpt-9"}, "model", "The model 'gpt-9' does not exist or cannot be fine-tuned."),
        ({"training_file": None}, "training_file", "training_file is required."),
        ({"training_file": "file-nope"}, "training_file", "No file with id 'file-nope'."),
        (
            {"suffix": "x" * 65},
            "suffix",
            "suffix must be 1 to 64 characters of letters, digits, '.', '_' or '-'.",
        ),
        (
            {"suffix": "a:b"},
            "suffix",
            "suffix must be 1 to 64 characters of letters, digits, '.', '_' or '-'.",
        ),
        ({"seed": -1}, "seed", "seed must be a whole number from 0 to 2147483647."),
        (
            {"hyperparameters": {"n_epochs": 0}},
            "hyperparameters.n_epochs",
            "hyperparameters.n_epochs must be at least 1 and at most 50, got 0.",
        ),
        (
            {"hyperparameters": {"n_epochs": 51}},
            "hyperparameters.n_epochs",
            "hyperparameters.n_epochs must be at least 1 and at most 50, got 51.",
        ),
        (
            {"hyperparameters": {"n_epochs": "many"}},
            "hyperparameters.n_epochs",
            "hyperparameters.n_epochs must be 'auto' or a number, got 'many'.",
        ),
        (
            {"hyperparameters": {"batch_size": 1.5}},
            "hyperparameters.batch_size",
            "hyperparameters.batch_size must be a whole number, got 1.5.",
        ),
        (
            {"hyperparameters": {"learning_rate_multiplier": 0}},
            "hyperparameters.learning_rate_multiplier",
            "hyperparameters.learning_rate_multiplier must be at least 0.01 and at most 10, got 0.",
        ),
        (
            {"hyperparameters": {"warmup": 3}},
            "hyperparameters.warmup",
            "Unknown hyperparameter 'warmup'; allowed: n_epochs, batch_size, learning_rate_multiplier, lora_rank, lora_alpha.",
        ),
        (
            {"method": {"type": "dpo"}},
            "method.type",
            "method.type 'dpo' is not supported; use 'supervised'.",
        ),
        (
            {
                "method": {
                    "type": "supervised",
                    "supervised": {"hyperparameters": {"batch_size": 0}},
                }
            },
            "method.supervised.hyperparameters.batch_size",
            "method.supervised.hyperparameters.batch_size must be at least 1 and at most 256, got 0.",
        ),
        ({"training_type": "qlora"}, "training_type", "training_type must be one of lora, full."),
        (
            {"training_type": "full", "hyperparameters": {"lora_rank": 8}},
            "hyperparameters",
            "lora_rank applies to LoRA only, not to full fine-tuning.",
        ),
        (
            {"metadata": {"team": 5}},
            "metadata.team",
            "metadata keys must be at most 64 characters and values strings of at most 512.",
        ),
    ],
)
def test_bad_parameters_get_400_naming_the_parameter(
    alice_api, training_file, body, param, message
):
    response = create(alice_api, **{"training_file": training_file.public_id, **body})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["message"]) == (param, message)
    assert error["type"] == "invalid_request_error"
    assert not FineTuningJob.unscoped.exists()


def test_files_that_cannot_be_trained_on_are_refused(
    alice_api, acme, globex, artifact_store, demo_model_path
):
    other_tenants = make_training_file(globex)
    user_data = make_training_file(acme, purpose="user_data")
    broken = make_training_file(acme, status="error")
    cases = [
        (other_tenants, f"No file with id '{other_tenants.public_id}'."),
        (
            user_data,
            f"File {user_data.public_id} has purpose 'user_data'; fine-tuning needs purpose 'fine-tune'.",
        ),
        (broken, f"File {broken.public_id} failed validation: line 1: invalid JSON"),
    ]
    for file, message in cases:
        for param in ("training_file", "validation_file"):
            good = make_training_file(acme)
            body = {"training_file": good.public_id, param: file.public_id}
            error = create(alice_api, **body).json()["error"]
            assert (error["param"], error["message"]) == (param, message)
    assert not FineTuningJob.unscoped.exists()


def test_a_key_without_the_fine_tuning_scope_is_refused(api, acme, alice, training_file):
    from tests.factories import make_key

    key = make_key(acme, alice, scopes=["models"])
    response = create(api(key), training_file=training_file.public_id)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"


def test_a_job_waits_for_its_file_to_be_validated(
    alice_api, acme, artifact_store, demo_model_path, run_commits, fake_trainer
):
    pending = make_training_file(acme)
    File.unscoped.filter(pk=pending.pk).update(status="uploaded")
    from tokenmill.finetuning import services

    job_id = create(alice_api, training_file=pending.public_id).json()["id"]
    job = FineTuningJob.unscoped.get(public_id=job_id)
    assert services.job_prepare(job_id=job.pk) == "waiting"
    File.unscoped.filter(pk=pending.pk).update(status="processed")
    assert run_commits(lambda: services.job_prepare(job_id=job.pk)) == "queued"
    assert FineTuningJob.unscoped.get(pk=job.pk).status == "succeeded"


def test_cancel(alice_api, training_file, run_commits):
    job_id = create(alice_api, training_file=training_file.public_id).json()[
        "id"
    ]  # not yet prepared
    cancelled = run_commits(lambda: alice_api.post(f"/v1/fine_tuning/jobs/{job_id}/cancel"))
    assert cancelled.json()["status"] == "cancelled"
    again = alice_api.post(f"/v1/fine_tuning/jobs/{job_id}/cancel")
    assert again.status_code == 400
    assert (
        again.json()["error"]["message"]
        == f"Job {job_id} has already cancelled and cannot be cancelled."
    )


def test_list_jobs_newest_first_with_cursor(alice_api, training_file):
    ids = [create(alice_api, training_file=training_file.public_id).json()["id"] for _ in range(3)]
    page = alice_api.get("/v1/fine_tuning/jobs?limit=2").json()
    assert [j["id"] for j in page["data"]] == ids[::-1][:2] and page["has_more"]
    rest = alice_api.get(f"/v1/fine_tuning/jobs?limit=2&after={page['data'][-1]['id']}").json()
    assert [j["id"] for j in rest["data"]] == [ids[0]] and not rest["has_more"]


def test_the_job_records_which_key_created_it(alice_api, training_file, acme):
    job_id = create(alice_api, training_file=training_file.public_id).json()["id"]
    assert FineTuningJob.unscoped.get(public_id=job_id).created_by_key == ApiKey.unscoped.get(
        tenant=acme
    )


def test_a_missing_base_model_fails_the_job_instead_of_stranding_it(
    alice_api, training_file, settings, tmp_path, run_commits
):
    settings.MODEL_ROOT = tmp_path / "no-models"
    job_id = run_commits(lambda: create(alice_api, training_file=training_file.public_id)).json()[
        "id"
    ]
    job = alice_api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "failed"
    assert job["error"]["code"] == "base_model_not_found"
    assert job["error"]["message"] == "The base model tiny-chat is not installed."


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"hyperparameters": {"n_epochs": "1e400"}}, "hyperparameters.n_epochs"),
        ({"suffix": "rooms\n"}, "suffix"),
        ({"model": "tiny\x00chat"}, "model"),
    ],
)
def test_odd_inputs_get_a_400_not_a_500(alice_api, training_file, body, param):
    import json

    payload = json.dumps({"model": "tiny-chat", "training_file": training_file.public_id, **body})
    payload = payload.replace('"1e400"', "1e400")  # a number JSON allows and a float cannot hold
    response = alice_api.post("/v1/fine_tuning/jobs", payload, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["param"] == param


def test_options_requests_get_a_clear_405(alice_api):
    for url in ("/v1/files", "/v1/fine_tuning/jobs", "/v1/models"):
        response = alice_api.options(url)
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"


def test_retrying_a_cancelled_job_is_not_stopped_by_the_old_cancel(
    alice_api, training_file, fake_trainer, run_commits, acme
):
    from tokenmill.finetuning import control, services

    fake_trainer.setenv("FAKE_TRAINER_MODE", "fail")
    job_id = run_commits(lambda: create(alice_api, training_file=training_file.public_id)).json()[
        "id"
    ]
    job = FineTuningJob.unscoped.get(public_id=job_id)
    assert job.status == "failed"
    control.request_stop(job_id, job.attempt)  # what cancelling the running attempt leaves
    fake_trainer.setenv("FAKE_TRAINER_MODE", "ok")
    run_commits(lambda: services.job_retry(job=job))
    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempt == 2


def test_a_model_closed_to_fine_tuning_is_refused(alice_api, training_file):
    from tokenmill.catalog.models import BaseModel

    BaseModel.objects.filter(model_id="tiny-chat").update(supports_fine_tuning=False)
    error = create(alice_api, training_file=training_file.public_id).json()["error"]
    assert (error["param"], error["code"]) == ("model", "model_not_fine_tunable")
    assert error["message"] == "The model 'tiny-chat' cannot be fine-tuned."


def test_an_organization_may_have_only_so_many_jobs_waiting(
    alice_api, charlie_api, training_file, settings, globex
):
    settings.MAX_QUEUED_JOBS = 2
    first = create(alice_api, training_file=training_file.public_id).json()["id"]
    create(alice_api, training_file=training_file.public_id)
    refused = create(alice_api, training_file=training_file.public_id)
    assert refused.status_code == 400
    assert refused.json()["error"] == {
        "message": "Your organization already has 2 fine-tuning jobs waiting to run, the most "
        "allowed is 2; wait for some to start or cancel some.",
        "type": "invalid_request_error",
        "param": None,
        "code": "too_many_queued_jobs",
    }
    assert FineTuningJob.unscoped.filter(tenant__slug="acme").count() == 2  # nothing half-made
    # Another organization is not held back by acme's queue...
    other = make_training_file(globex)
    assert create(charlie_api, training_file=other.public_id).status_code == 200
    # ...and a cancelled job makes room again.
    alice_api.post(f"/v1/fine_tuning/jobs/{first}/cancel")
    assert create(alice_api, training_file=training_file.public_id).status_code == 200
