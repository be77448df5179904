"""A GPU worker loses no outcome to a broker blip and trains one attempt only once."""

import json

from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from gpu_inference import protocol
from gpu_inference.artifacts import ArtifactStore
from gpu_inference.worker import ALREADY_CLAIMED, run_job
from tests.finetuning.conftest import chat_examples, lost
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning import scheduling
from tokenmill.finetuning.models import FineTunedModel, FineTuningJob

FAKE_TRAINER = "tests.finetuning.fake_trainer.run"


def spec_in(store: ArtifactStore) -> protocol.JobSpec:
    body = "".join(json.dumps(example) + "\n" for example in chat_examples())
    store.write_bytes("files/file-x/normalized.jsonl", body.encode())
    return {
        "job_id": "ftjob-x",
        "attempt": 1,
        "base_model": "tiny-chat",
        "base_model_path": "tiny-chat",
        "training_file": "files/file-x/normalized.jsonl",
        "validation_file": None,
        "output_prefix": "jobs/ftjob-x/attempt-1",
        "method": "lora",
        "hyperparameters": {"n_epochs": 1},
        "seed": 0,
        "context_length": None,
    }


def run(spec, store, tmp_path, send, **options) -> str:
    return run_job(
        spec,
        store=store,
        model_root=tmp_path / "models",
        trainer=FAKE_TRAINER,
        send=send,
        heartbeat_seconds=3600,
        work_root=tmp_path / "work",
        **options,
    )


def test_progress_reports_survive_a_broker_blip_and_checkpoints_are_sent_later(
    artifact_store, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "ok")
    store = artifact_store
    sent: list[dict] = []
    refused: set[int] = set()

    def blinking_broker(report):
        # Every progress report is refused the first time it is offered.
        if report["kind"] != "outcome" and report["seq"] not in refused:
            refused.add(report["seq"])
            raise BrokerError("[Errno 111] Connection refused")
        sent.append(report)

    assert run(spec_in(store), store, tmp_path, blinking_broker, sleep=lambda s: None) == (
        "succeeded"
    )
    checkpoints = [r["payload"]["step"] for r in sent if r["kind"] == "checkpoint"]
    assert sorted(checkpoints) == [2, 4]  # both reported, after the blip
    assert sent[-1]["kind"] == "outcome" and sent[-1]["payload"]["status"] == "succeeded"
    assert len({r["seq"] for r in sent}) == len(sent)


def test_the_outcome_is_stored_first_then_retried_with_backoff(
    artifact_store, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "ok")
    store = artifact_store
    sent: list[dict] = []
    refusals = iter(range(3))
    waits: list[float] = []

    def send(report):
        if report["kind"] == "outcome":
            stored = json.loads(store.read_bytes(protocol.outcome_key("ftjob-x", 1)))
            assert stored == report  # written before any send
            if next(refusals, None) is not None:
                raise BrokerError("[Errno 111] Connection refused")
        sent.append(report)

    assert run(spec_in(store), store, tmp_path, send, sleep=waits.append) == "succeeded"
    assert waits == [1.0, 2.0, 4.0]
    assert sent[-1]["kind"] == "outcome"


def test_a_worker_that_cannot_send_its_outcome_gives_up_after_its_window(
    artifact_store, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "ok")
    store = artifact_store
    waits: list[float] = []

    def broker_down_for_outcomes(report):
        if report["kind"] == "outcome":
            raise BrokerError("[Errno 111] Connection refused")

    spec = spec_in(store)
    assert (
        run(
            spec,
            store,
            tmp_path,
            broker_down_for_outcomes,
            outcome_retry_seconds=0.5,
            sleep=waits.append,
        )
        == "succeeded"
    )
    assert waits == []  # 0.5 s leaves no room for a 1 s wait
    assert store.exists(protocol.outcome_key("ftjob-x", 1))


def test_a_second_delivery_of_the_same_attempt_trains_nothing(
    artifact_store, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "ok")
    store = artifact_store
    spec = spec_in(store)
    first: list[dict] = []
    second: list[dict] = []
    assert run(spec, store, tmp_path, first.append) == "succeeded"
    assert run(spec, store, tmp_path, second.append) == ALREADY_CLAIMED
    assert second == []  # no STARTED, no training, no outcome
    trained = [r for r in first if r["kind"] == "event"]
    assert len(trained) == 1 and trained[0]["payload"]["message"].startswith("Fake training")
    # A new attempt of the same job is a new claim.
    assert run({**spec, "attempt": 2}, store, tmp_path, second.append) == "succeeded"


def test_the_reaper_records_a_stored_outcome_instead_of_retraining(dispatched, settings):
    job = dispatched
    output = f"jobs/{job.public_id}/attempt-1/final"
    get_artifact_store().write_bytes(f"{output}/adapter_config.json", b"{}")
    outcome = {
        "job_id": job.public_id,
        "attempt": 1,
        "seq": 9,
        "kind": "outcome",
        "at": timezone.now().timestamp(),
        "payload": {"status": "succeeded", "trained_tokens": 200, "output": output, "metrics": {}},
    }
    get_artifact_store().write_bytes(
        protocol.outcome_key(job.public_id, 1), json.dumps(outcome).encode()
    )
    lost(job, settings)
    counts = scheduling.requeue_or_fail_lost_jobs()
    assert (counts["ended"], counts["requeued"]) == (1, 0)
    job = FineTuningJob.unscoped.get(pk=job.pk)
    assert (job.status, job.attempt, job.trained_tokens) == ("succeeded", 1, 200)
    assert FineTunedModel.unscoped.filter(job=job).count() == 1
