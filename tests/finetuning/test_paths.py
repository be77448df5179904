"""No server paths reach tenants: events and errors name store keys and models only."""

import json
from pathlib import Path

import pytest

from gpu_inference.worker import run_job
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning import scheduling, services
from tokenmill.finetuning.models import FineTuningJob
from tokenmill.finetuning.params import JobRequest


def server_paths(settings) -> set[str]:
    store = get_artifact_store()
    roots = (*store.host_folders(), Path(settings.ARTIFACT_CACHE_DIR), Path(settings.MODEL_ROOT))
    return {str(form) for root in roots for form in (root, root.resolve())}


def what_the_tenant_reads(job: FineTuningJob) -> list[str]:
    texts = [json.dumps(job.error)]
    for message, data in job.events.values_list("message", "data"):
        texts += [message, json.dumps(data)]
    return texts


def assert_no_server_path(job: FineTuningJob, settings) -> None:
    for text in what_the_tenant_reads(job):
        for path in server_paths(settings):
            assert path not in text, text


@pytest.mark.slow
def test_a_trained_job_shows_no_server_path(
    acme, training_file, settings, django_capture_on_commit_callbacks
):
    # The real trainer, one epoch on the demo model: its "Training finished" event and all.
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(
            tenant=acme,
            request=JobRequest(
                model="tiny-chat",
                training_file=training_file.public_id,
                hyperparameters={"n_epochs": 1},
            ),
        )
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    finished = job.events.get(message__startswith="Training finished")
    assert finished.data == {"trained_tokens": job.trained_tokens}
    assert_no_server_path(job, settings)


def test_a_missing_base_model_on_the_worker_is_not_named_by_its_folder(
    acme, training_file, settings, tmp_path, django_capture_on_commit_callbacks
):
    job = services.job_create(
        tenant=acme, request=JobRequest(model="tiny-chat", training_file=training_file.public_id)
    )
    assert services.job_prepare(job_id=job.pk) == "queued"
    settings.MODEL_ROOT = tmp_path / "gpu-node-models"  # the GPU node lacks the model
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.jobs_dispatch()
    job.refresh_from_db()
    assert job.error["code"] == "base_model_not_found"
    assert job.error["message"] == "the base model is not installed"
    assert_no_server_path(job, settings)


def leaky_trainer(spec: dict, reporter) -> dict:
    """A trainer whose own messages carry absolute paths (a library's error text, say)."""
    reporter.event("info", f"Loading {spec['base_model_path']}", {"from": spec["training_file"]})
    raise FileNotFoundError(f"[Errno 2] No such file: '{spec['base_model_path']}/model.bin'")


def test_the_worker_strips_its_folders_from_whatever_it_reports(artifact_store, tmp_path):
    store, model_root = artifact_store, tmp_path / "models"
    store.write_bytes("files/file-x/normalized.jsonl", b"{}\n")
    sent = []
    spec = {
        "job_id": "ftjob-x",
        "attempt": 1,
        "base_model": "tiny-chat",
        "base_model_path": "tiny-chat",
        "training_file": "files/file-x/normalized.jsonl",
        "validation_file": None,
        "output_prefix": "jobs/ftjob-x/attempt-1",
        "method": "lora",
        "hyperparameters": {},
        "seed": 0,
        "context_length": None,
    }
    outcome = run_job(
        spec,
        store=store,
        model_root=model_root,
        trainer=f"{__name__}.leaky_trainer",
        send=sent.append,
        heartbeat_seconds=60,
        work_root=tmp_path / "work",
    )
    assert outcome == "failed"
    reported = json.dumps([report["payload"] for report in sent])
    assert str(tmp_path) not in reported
    event = next(report for report in sent if report["kind"] == "event")["payload"]
    assert event["message"] == "Loading tiny-chat"
    assert event["data"] == {"from": "files/file-x/normalized.jsonl"}
    assert sent[-1]["payload"]["message"] == (
        "The training stopped because of an internal error (FileNotFoundError); "
        "ask support to retry the job."
    )
    assert [report["seq"] for report in sent] == list(range(1, len(sent) + 1))


def test_a_crash_in_the_trainer_names_its_class_only(monkeypatch, caplog):
    from gpu_inference import training

    detail = "/usr/lib/python3/site-packages/torch/lib/libtorch.so: cannot open, see /tmp/x"

    class CrashingTrainer:
        def __init__(self, spec, reporter):
            pass

        def run(self):
            raise OSError(detail)

    monkeypatch.setattr(training, "_Trainer", CrashingTrainer)
    monkeypatch.setattr(training.TrainingSpec, "from_dict", staticmethod(lambda spec: spec))
    with pytest.raises(training.TrainingError) as failure:
        training.run_training({"job_id": "ftjob-x"}, reporter=None)
    assert failure.value.code == "internal_error"
    assert failure.value.message == (
        "The training stopped because of an internal error (OSError); ask support to retry the job."
    )
    assert detail in caplog.text  # the operator still has the detail
