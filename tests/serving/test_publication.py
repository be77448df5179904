"""The platform publishes each base model's adapters when a fine-tune succeeds or is deleted."""

import json

import pytest
from django.core.management import call_command

from gpu_inference.serving.manifest import folder_checksum, read_manifest
from tests.finetuning.conftest import make_training_file, report
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning import adapters, control, services
from tokenmill.finetuning.models import FineTunedModel, FineTuningJob
from tokenmill.finetuning.params import JobRequest


@pytest.fixture
def woken(monkeypatch) -> list[str]:
    """The base models whose agents were woken up (the broker path is tested with the agent)."""
    calls: list[str] = []
    monkeypatch.setattr(adapters, "send_wake_up", lambda connection, model: calls.append(model))
    return calls


@pytest.fixture
def sent(monkeypatch) -> list[dict]:
    specs: list[dict] = []
    monkeypatch.setattr(control, "enqueue_train", specs.append)
    return specs


def succeed(tenant, sent, commits, *, training_type="lora", suffix="rooms") -> FineTuningJob:
    """A job run to success by its worker's reports, its adapter saved where training puts it.

    `commits` runs what each step leaves for after its commit (tasks run eagerly)."""
    file = make_training_file(tenant)
    with commits(execute=True):
        job = services.job_create(
            tenant=tenant,
            request=JobRequest(
                model="tiny-chat",
                training_file=file.public_id,
                suffix=suffix,
                training_type=training_type,
            ),
        )
    spec = sent.pop()  # prepared, then dispatched to the GPU queue
    output = f"{spec['output_prefix']}/final"
    store = get_artifact_store()
    store.write_bytes(f"{output}/adapter_config.json", json.dumps({"r": 16}).encode())
    store.write_bytes(f"{output}/adapter_model.safetensors", b"weights")
    with commits(execute=True):
        report(job, "started", seq=1, attempt=spec["attempt"])
        report(
            job,
            "outcome",
            {"status": "succeeded", "trained_tokens": 100, "output": output},
            seq=2,
            attempt=spec["attempt"],
        )
    job.refresh_from_db()
    assert job.status == "succeeded"
    return job


def test_a_succeeded_fine_tune_is_published_to_the_serving_agents(
    acme, artifact_store, demo_model_path, sent, woken, django_capture_on_commit_callbacks
):
    job = succeed(acme, sent, django_capture_on_commit_callbacks)
    model = FineTunedModel.unscoped.get(job=job)
    manifest = read_manifest(get_artifact_store(), "tiny-chat")
    assert [(a.name, a.artifact_key) for a in manifest.adapters] == [
        (job.fine_tuned_model, model.artifact_key)
    ]
    assert manifest.adapters[0].checksum == folder_checksum(
        get_artifact_store(), model.artifact_key
    )
    assert woken == ["tiny-chat"]


def test_a_deleted_fine_tune_leaves_the_manifest(
    acme, globex, artifact_store, demo_model_path, sent, woken, django_capture_on_commit_callbacks
):
    kept = succeed(globex, sent, django_capture_on_commit_callbacks, suffix="kept")
    gone = succeed(acme, sent, django_capture_on_commit_callbacks, suffix="gone")
    with django_capture_on_commit_callbacks(execute=True):
        services.fine_tuned_model_delete(tenant=acme, model=FineTunedModel.unscoped.get(job=gone))
    manifest = read_manifest(get_artifact_store(), "tiny-chat")
    assert [a.name for a in manifest.adapters] == [kept.fine_tuned_model]
    assert woken == ["tiny-chat"] * 3


def test_a_full_fine_tune_is_not_a_lora_adapter_and_is_not_published(
    acme, artifact_store, demo_model_path, sent, woken, django_capture_on_commit_callbacks
):
    succeed(acme, sent, django_capture_on_commit_callbacks, training_type="full")
    assert read_manifest(get_artifact_store(), "tiny-chat").adapters == ()


def test_publish_adapters_writes_every_manifest_again(
    acme, artifact_store, demo_model_path, sent, woken, django_capture_on_commit_callbacks, capsys
):
    job = succeed(acme, sent, django_capture_on_commit_callbacks)
    get_artifact_store().delete("serving/manifests/tiny-chat.json")
    call_command("publish_adapters")
    assert "tiny-chat: 1 adapters" in capsys.readouterr().out
    manifest = read_manifest(get_artifact_store(), "tiny-chat")
    assert [a.name for a in manifest.adapters] == [job.fine_tuned_model]
