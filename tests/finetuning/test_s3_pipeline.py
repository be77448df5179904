"""A fine-tune end to end with every artifact on S3 (moto's server), through real workers.

The upload goes to the bucket, the control worker validates it from there, the GPU
worker (no database, no Django) copies the dataset to its own disk, trains with the
real trainer, and uploads each checkpoint and the adapter; the serving side then
fetches the adapter from the bucket into its local cache, as vLLM needs real files.
Nothing is written to a local artifact folder at all.
"""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from gpu_inference.serving.agent import AdapterCache
from gpu_inference.serving.manifest import read_manifest
from tests.finetuning.conftest import chat_examples
from tests.finetuning.test_workers import job_status, messages, wait_for
from tests.processes import Fleet, store_environment
from tokenmill.files.models import File
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning.models import FineTunedModel, JobCheckpoint

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def s3_fleet(settings, s3_store_url, tmp_path, demo_model_path):
    settings.ARTIFACT_STORE_URL = s3_store_url
    settings.ARTIFACT_CACHE_DIR = tmp_path / "web-cache"
    # The real trainer on the GPU worker (no TRAINER override).
    fleet = Fleet(store_environment=store_environment(settings), trainer=None)
    yield fleet
    fleet.stop()


def test_a_fine_tune_keeps_every_artifact_in_s3_and_serving_fetches_the_adapter(
    s3_fleet, alice_api, acme, settings, tmp_path
):
    gpu_cache = tmp_path / "gpu-cache"
    s3_fleet.control()
    s3_fleet.gpu(ARTIFACT_CACHE_DIR=str(gpu_cache))
    body = "".join(json.dumps(example) + "\n" for example in chat_examples()).encode()
    uploaded = alice_api.post(
        "/v1/files",
        {"purpose": "fine-tune", "file": SimpleUploadedFile("train.jsonl", body)},
        format="multipart",
    )
    assert uploaded.status_code == 200, uploaded.content
    file_id = uploaded.json()["id"]
    file = wait_for(
        lambda: (f := File.unscoped.get(public_id=file_id)).status != "uploaded" and f,
        what="the control worker to validate the upload",
    )
    assert file.status == "processed", file.status_details

    store = get_artifact_store()
    assert store.describe() == settings.ARTIFACT_STORE_URL
    assert store.read_bytes(file.storage_key) == body
    assert store.exists(file.normalized_key)

    response = alice_api.post(
        "/v1/fine_tuning/jobs",
        {"model": "tiny-chat", "training_file": file_id, "hyperparameters": {"n_epochs": 2}},
        format="json",
    )
    assert response.status_code == 200, response.content
    job_id = response.json()["id"]
    job = wait_for(
        lambda: (j := job_status(job_id)).is_terminal and j.released_at and j,
        timeout=240,
        what="the GPU worker to train",
    )
    assert job.status == "succeeded", messages(job_id)

    checkpoints = list(JobCheckpoint.unscoped.filter(job=job).order_by("step_number"))
    assert len(checkpoints) == 2
    for checkpoint in checkpoints:
        assert checkpoint.artifact_key.startswith(f"jobs/{job_id}/attempt-1/checkpoints/")
        assert f"{checkpoint.artifact_key}/adapter_config.json" in store.list_files(
            checkpoint.artifact_key
        )
    model = FineTunedModel.unscoped.get(job=job)
    adapter_files = store.list_files(model.artifact_key)
    assert f"{model.artifact_key}/adapter_config.json" in adapter_files
    assert any(key.endswith(".safetensors") for key in adapter_files)
    # The GPU worker's work folder and dataset copy are gone once the adapter is uploaded.
    assert not any(path.is_file() for path in gpu_cache.rglob("*"))

    # The control worker publishes the manifest once the job's success commits.
    manifest = wait_for(
        lambda: (m := read_manifest(store, "tiny-chat")) and model.model_id in str(m) and m,
        what="the manifest to list the adapter",
    )
    listed = {adapter.name: adapter for adapter in manifest.adapters}
    cached = AdapterCache(tmp_path / "adapters", store).ensure(listed[model.model_id])
    assert (cached / "adapter_config.json").is_file()
    assert sorted(path.name for path in cached.iterdir()) == sorted(
        key.rsplit("/", 1)[1] for key in adapter_files
    )
    assert not (tmp_path / "artifacts").exists()
