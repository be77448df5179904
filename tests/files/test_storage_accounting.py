"""The storage quota counts every byte a tenant keeps in the artifact store (files,
normalized datasets, checkpoints, fine-tuned models), and deleting an organization
removes its bytes from the store."""

import pytest
from django.core.management import call_command

from tests.files.helpers import chat_lines, error_of, jsonl, stored_files
from tests.finetuning.conftest import FAKE_TRAINER
from tokenmill.files.models import StoredArtifact
from tokenmill.files.selectors import storage_used_bytes
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning.models import FineTuningJob


@pytest.fixture
def fake_trainer(settings, monkeypatch, demo_model_path):
    settings.TRAINER = FAKE_TRAINER
    monkeypatch.setenv("FAKE_TRAINER_MODE", "ok")


@pytest.fixture
def train(alice_api, django_capture_on_commit_callbacks, fake_trainer):
    """Run a fine-tuning job on `file_id` to its end (tasks run in-process); returns the job."""

    def _train(file_id: str) -> FineTuningJob:
        with django_capture_on_commit_callbacks(execute=True):
            response = alice_api.post(
                "/v1/fine_tuning/jobs",
                {"model": "tiny-chat", "training_file": file_id},
                format="json",
            )
        assert response.status_code == 200, response.content
        job = FineTuningJob.unscoped.get(public_id=response.json()["id"])
        assert job.status == "succeeded", job.error
        return job

    return _train


def tenant_files(store) -> list[str]:
    """What tenants own in the store: not the platform's serving manifests (serving/)."""
    return [key for key in stored_files(store) if not key.startswith("serving/")]


def store_size(key: str) -> int:
    return get_artifact_store().size(key)


def test_checkpoints_models_and_normalized_files_count_against_the_quota(
    upload, train, alice_api, acme, artifact_store
):
    uploaded = upload(jsonl(chat_lines(20))).json()
    job = train(uploaded["id"])

    file_folder, job_folder = f"files/{uploaded['id']}", f"jobs/{job.public_id}"
    assert store_size(job_folder) > 0  # checkpoints and the fine-tuned model
    assert store_size(file_folder) > uploaded["bytes"]  # the upload and its normalized copy
    used = storage_used_bytes(tenant=acme)
    assert used == store_size(file_folder) + store_size(job_folder)
    assert used == sum(store_size(key) for key in tenant_files(artifact_store))
    organization = alice_api.get("/api/v1/organization").json()
    assert organization["storage_used_bytes"] == used
    assert organization["storage_quota_bytes"] == 10 * 1024**3

    # Full: neither another file nor another job (its checkpoints need room) is accepted.
    acme.storage_quota_bytes = used
    acme.save()
    refused = upload(b"x" * 10, name="notes.txt", purpose="user_data")
    assert refused.status_code == 400
    assert error_of(refused) == {
        "message": f"Storage quota exceeded: the organization stores {used:,} bytes of its "
        f"{used:,}-byte quota, and this file is 10 bytes. Delete files you no longer need, "
        "or ask for a larger quota.",
        "type": "invalid_request_error",
        "param": "file",
        "code": "storage_quota_exceeded",
    }
    jobs_before = FineTuningJob.unscoped.count()
    no_room = alice_api.post(
        "/v1/fine_tuning/jobs",
        {"model": "tiny-chat", "training_file": uploaded["id"]},
        format="json",
    )
    assert no_room.status_code == 400
    assert error_of(no_room) == {
        "message": f"Storage quota exceeded: the organization stores {used:,} bytes of its "
        f"{used:,}-byte quota (files, checkpoints and fine-tuned models), so a job has no "
        "room for its checkpoints and model. Delete files or fine-tuned models you no "
        "longer need, or ask for a larger quota.",
        "type": "invalid_request_error",
        "param": None,
        "code": "storage_quota_exceeded",
    }
    assert FineTuningJob.unscoped.count() == jobs_before  # nothing half-written


def test_deleting_a_fine_tuned_model_gives_its_bytes_back(
    upload, train, alice_api, acme, django_capture_on_commit_callbacks
):
    job = train(upload(jsonl(chat_lines(20))).json()["id"])
    before = storage_used_bytes(tenant=acme)
    final = store_size(job.model.artifact_key)
    assert final > 0

    with django_capture_on_commit_callbacks(execute=True):
        deleted = alice_api.delete(f"/v1/models/{job.fine_tuned_model}")
    assert deleted.status_code == 200

    assert storage_used_bytes(tenant=acme) == before - final


def test_deleting_a_file_gives_its_bytes_back(upload, alice_api, acme):
    file_id = upload(jsonl(chat_lines(12))).json()["id"]
    assert storage_used_bytes(tenant=acme) > 0
    assert alice_api.delete(f"/v1/files/{file_id}").status_code == 200
    assert storage_used_bytes(tenant=acme) == 0
    assert not StoredArtifact.unscoped.exists()


def test_deleting_an_organization_removes_its_bytes_from_the_store(
    upload, train, acme, globex, charlie_key, artifact_store, django_capture_on_commit_callbacks
):
    job = train(upload(jsonl(chat_lines(20))).json()["id"])
    upload(b"some notes", name="notes.txt", purpose="user_data")
    kept = upload(b"globex's notes", name="notes.txt", purpose="user_data", key=charlie_key)
    assert any(key.startswith(f"jobs/{job.public_id}/") for key in tenant_files(artifact_store))

    with django_capture_on_commit_callbacks(execute=True):
        acme.delete()  # what the console's delete does

    left = tenant_files(artifact_store)
    assert left == [f"files/{kept.json()['id']}/original"]
    assert list(StoredArtifact.unscoped.values_list("key", flat=True)) == [
        f"files/{kept.json()['id']}"
    ]
    assert storage_used_bytes(tenant=globex) == len(b"globex's notes")


def test_storage_recount_counts_what_was_stored_before_the_ledger(
    upload, train, acme, artifact_store, capsys
):
    job = train(upload(jsonl(chat_lines(20))).json()["id"])
    StoredArtifact.unscoped.all().delete()  # as after an upgrade: nothing counted yet
    assert storage_used_bytes(tenant=acme) == 0

    call_command("storage_recount")

    total = sum(store_size(key) for key in tenant_files(artifact_store))
    assert storage_used_bytes(tenant=acme) == total > store_size(f"jobs/{job.public_id}") > 0
    assert capsys.readouterr().out == f"acme: {total:,} bytes\n"
