"""The evaluation report on the job page: figures, charts, samples, and serving a checkpoint."""

import re

import pytest
from django.urls import reverse

from gpu_inference.serving.manifest import read_manifest
from tests.finetuning.evaluation_data import stored_evaluation
from tests.finetuning.test_evaluation_api import succeeded_job
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning.models import JobEvaluation


@pytest.fixture(autouse=True)
def _private_store(artifact_store, demo_model_path):
    """This test's own artifact store."""


def page_of(client, job) -> str:
    response = client.get(reverse("dashboard:job-detail", args=[job.public_id]))
    assert response.status_code == 200
    return response.content.decode()


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_job_page_shows_the_report_with_numbers(alice_client, acme):
    job = succeeded_job(acme)
    stored_evaluation(job)
    page = page_of(alice_client, job)
    words = text(page)
    assert "The fine-tune helped: accuracy 0.000 for the base model, 0.900 fine-tuned." in words
    assert "on 10 held-out examples of the training file (seed 77), never trained on" in words
    # Base vs fine-tuned bars, on a 0-1 scale for rates and the larger loss for the loss.
    assert 'class="bar bar-base" style="width: 0.0%"' in page
    assert 'class="bar bar-tuned" style="width: 90.0%"' in page
    assert 'class="bar bar-tuned" style="width: 3.1%"' in page  # loss 0.2 of 6.5
    assert "Loss on the reference answers (lower is better)" in words
    # Per label, the confusion matrix with its (other) column, and the epochs.
    assert "good 1.000 0.833 0.909 6 0.958" in words
    assert "True \\ predicted bad good (other) bad 4 0 0 good 1 5 0" in words
    assert "Epoch 2 lowest loss Validation loss 0.7000 Token accuracy 83.0%" in words
    assert "Anna feels proud today. good Anna is a girl who likes to read. good" in words


def test_a_waiting_or_failed_report_says_so(alice_client, acme):
    job = succeeded_job(acme)
    report = JobEvaluation.objects.create(tenant=acme, job=job, model_id=job.fine_tuned_model)
    assert "Computing the report through the serving replicas of tiny-chat" in text(
        page_of(alice_client, job)
    )
    JobEvaluation.unscoped.filter(pk=report.pk).update(status="failed", error="No replica.")
    assert "No replica." in text(page_of(alice_client, job))


def test_another_organizations_report_is_not_found(charlie_client, acme):
    job = succeeded_job(acme)
    stored_evaluation(job)
    response = charlie_client.get(reverse("dashboard:job-detail", args=[job.public_id]))
    assert response.status_code == 404


def test_serving_a_checkpoint_from_the_report_publishes_and_evaluates_it(
    alice_client, acme, django_capture_on_commit_callbacks
):
    job = succeeded_job(acme)
    evaluation = stored_evaluation(job)
    first = evaluation.report["epochs"][0]
    folder = job.checkpoints.get(public_id=first["checkpoint"]).artifact_key
    get_artifact_store().write_bytes(f"{folder}/adapter_model.safetensors", b"weights")
    url = reverse("dashboard:checkpoint-model", args=[first["checkpoint"]])
    page = page_of(alice_client, job)
    assert f'action="{url}"' in page and "Serve and evaluate" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(url, {"evaluate": "1"})
    assert response.status_code == 302

    evaluation.refresh_from_db()
    # The report is made again for the checkpoint's model, once a replica serves it.
    assert (evaluation.status, evaluation.model_id, evaluation.report) == (
        "pending",
        first["model"],
        None,
    )
    manifest = read_manifest(get_artifact_store(), "tiny-chat")
    assert first["model"] in [adapter.name for adapter in manifest.adapters]
