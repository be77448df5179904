"""The evaluation report end to end: a real LoRA fine-tune of tiny-chat on a small
classification set, its held-out split, and the report computed through a real vLLM
server serving the base model and the adapter (the replica the gateway would use)."""

import random

import pytest

from gpu_inference import vocabulary
from gpu_inference.serving.vllm_api import VllmClient
from tests.finetuning.conftest import make_training_file
from tests.gpu_inference.helpers import chat_example, pirate_questions
from tokenmill.catalog.services import replica_register
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning import evaluation, scheduling, services
from tokenmill.finetuning.models import FineTuningJob, JobEvaluation
from tokenmill.finetuning.params import JobRequest

pytestmark = pytest.mark.slow


def mood_examples(n: int, *, seed: int) -> list[dict]:
    """'Anna feels proud today.' -> good, 'Tom feels lonely today.' -> bad."""
    rng = random.Random(seed)
    names = vocabulary.FEMALE_NAMES + vocabulary.MALE_NAMES
    examples = []
    for index in range(n):
        good = index % 2 == 0
        emotion = rng.choice(vocabulary.EMOTIONS_GOOD if good else vocabulary.EMOTIONS_BAD)
        text = f"{rng.choice(names)} feels {emotion} today."
        examples.append(
            {
                "messages": [
                    {"role": "user", "content": text},
                    {"role": "assistant", "content": "good" if good else "bad"},
                ]
            }
        )
    return examples


def banana_examples(n: int, *, seed: int) -> list[dict]:
    """Every question, whatever it asks, is answered 'BANANA!': a behaviour the base model
    never shows, so its held-out answers tell at once whether the fine-tune learned it."""
    return [chat_example(question, "BANANA!") for question, _ in pirate_questions(n, seed=seed)]


def train_for_real(
    acme,
    django_capture_on_commit_callbacks,
    examples: list[dict] | None = None,
    *,
    classification: bool = True,
    suffix: str = "mood",
) -> FineTuningJob:
    training_file = make_training_file(acme, examples or mood_examples(100, seed=3))
    if classification:
        training_file.validation = {"format": "classification"}
        training_file.save(update_fields=["validation"])
    request = JobRequest(
        model="tiny-chat",
        training_file=training_file.public_id,
        suffix=suffix,
        seed=11,
        hyperparameters={"n_epochs": 10, "batch_size": 4},
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(tenant=acme, request=request)
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.jobs_dispatch()  # the real trainer, in-process (tasks run eagerly here)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    return job


def test_the_report_shows_the_fine_tune_beats_the_base_model(
    acme,
    artifact_store,
    demo_model_path,
    vllm_chat,
    django_capture_on_commit_callbacks,
    alice_api,
    tmp_path,
):
    job = train_for_real(acme, django_capture_on_commit_callbacks)
    # 100 examples: 10 held out (stated on the job), 90 trained on.
    assert job.holdout["count"] == 10
    assert job.n_train_examples == 90
    # No replica served the model when the job succeeded: the report waits.
    report_row = JobEvaluation.objects.for_tenant(acme).get(job=job)
    assert report_row.status == "pending"
    assert report_row.model_id == job.fine_tuned_model

    replica_register(model_id="tiny-chat", url=vllm_chat.base_url, api_key=vllm_chat.api_key)
    adapter = tmp_path / "adapter"
    get_artifact_store().fetch_folder(job.model.artifact_key, adapter)
    with VllmClient(vllm_chat.base_url, api_key=vllm_chat.api_key) as vllm:
        vllm.load_adapter(job.fine_tuned_model, str(adapter))
        try:
            with django_capture_on_commit_callbacks(execute=True):
                assert evaluation.evaluation_run(job_id=job.pk) == "succeeded"
        finally:
            vllm.unload_adapter(job.fine_tuned_model)

    report_row.refresh_from_db()
    report = report_row.report
    assert report["source"] == {
        "kind": "holdout",
        "file": job.training_file.public_id,
        "holdout": job.holdout,
        "examples": 10,
        "skipped": 0,
    }
    assert report["labels"] == ["bad", "good"]
    assert [row["epoch"] for row in report["epochs"]] == list(range(1, 11))
    assert all(
        row["valid_loss"] > 0 and 0 <= row["valid_token_accuracy"] <= 1 for row in report["epochs"]
    )
    base, tuned = report["models"]["base"], report["models"]["fine_tuned"]
    # The fine-tune answers with the labels; the base model does not know them.
    assert tuned["classification"]["accuracy"] > base["classification"]["accuracy"]
    assert tuned["answer_loss"] < base["answer_loss"]
    assert tuned["classification"]["roc_auc"]["macro"] is not None
    assert sum(map(sum, tuned["classification"]["confusion_matrix"])) == 10
    assert report["verdict"]["metric"] == "accuracy" and report["verdict"]["improved"]
    assert len(report["samples"]) == 5

    body = alice_api.get(f"/api/v1/fine_tuning/jobs/{job.public_id}/evaluation").json()
    assert body["status"] == "succeeded"
    assert body["report"]["verdict"]["improved"] is True
    assert body["holdout"] == job.holdout


def evaluate_through_vllm(job, vllm_chat, tmp_path, django_capture_on_commit_callbacks) -> dict:
    """The job's report, computed by the real vLLM replica holding its adapter."""
    replica_register(model_id="tiny-chat", url=vllm_chat.base_url, api_key=vllm_chat.api_key)
    adapter = tmp_path / "adapter"
    get_artifact_store().fetch_folder(job.model.artifact_key, adapter)
    with VllmClient(vllm_chat.base_url, api_key=vllm_chat.api_key) as vllm:
        vllm.load_adapter(job.fine_tuned_model, str(adapter))
        try:
            with django_capture_on_commit_callbacks(execute=True):
                assert evaluation.evaluation_run(job_id=job.pk) == "succeeded"
        finally:
            vllm.unload_adapter(job.fine_tuned_model)
    return JobEvaluation.objects.for_tenant(job.tenant).get(job=job).report


def test_a_chat_fine_tune_beats_the_base_model_on_its_held_out_answers(
    acme, artifact_store, demo_model_path, vllm_chat, django_capture_on_commit_callbacks, tmp_path
):
    job = train_for_real(
        acme,
        django_capture_on_commit_callbacks,
        banana_examples(30, seed=5),
        classification=False,
        suffix="banana",
    )
    assert job.holdout["count"] == 3  # a tenth of 30, held out of training
    report = evaluate_through_vllm(job, vllm_chat, tmp_path, django_capture_on_commit_callbacks)

    assert report["source"]["examples"] == 3
    assert report["labels"] is None  # not classification data
    base, tuned = report["models"]["base"], report["models"]["fine_tuned"]
    # The held-out questions were never trained on, yet the fine-tune answers them as taught.
    assert tuned["exact_match"] == tuned["normalized_match"] == 1.0
    assert base["exact_match"] == base["normalized_match"] == 0.0
    assert tuned["answer_loss"] < base["answer_loss"]
    assert report["verdict"] == {
        "metric": "normalized_match",
        "metric_label": "normalized match",
        "higher_is_better": True,
        "base": 0.0,
        "fine_tuned": 1.0,
        "improved": True,
    }
    assert all(sample["reference"] == "BANANA!" for sample in report["samples"])
