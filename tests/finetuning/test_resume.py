"""An attempt that follows an interrupted one resumes from its last checkpoint: the spec
names the checkpoints to carry, the worker copies them into its own attempt, and the
platform moves their rows (and the metrics up to them) to the new attempt. A drained
worker's hand-back queues the job again at once, without counting the attempt."""

from gpu_inference import protocol
from gpu_inference.worker import carry_checkpoints, fetch_resume_point, training_spec
from tests.finetuning.conftest import lost, report
from tests.finetuning.test_attempts import requeue
from tokenmill.files.storage import get_artifact_store
from tokenmill.finetuning import scheduling, services
from tokenmill.finetuning.checkpoint_models import fine_tuned_model_from_checkpoint
from tokenmill.finetuning.models import FineTuningJob, JobCheckpoint


def checkpoint_key(job, name: str, attempt: int = 1) -> str:
    return f"{protocol.attempt_prefix(job.public_id, attempt)}/checkpoints/{name}"


def train_two_epochs(job) -> list[str]:
    """What a worker leaves after two epochs (steps 2 and 4) and one more step's metrics."""
    store = get_artifact_store()
    keys = [checkpoint_key(job, "epoch-1"), checkpoint_key(job, "epoch-2")]
    for seq, (step, key) in enumerate(zip((2, 4), keys, strict=True), start=2):
        store.write_bytes(f"{key}/adapter_config.json", b"{}")
        store.write_bytes(f"{protocol.training_state_key(key)}/state.json", b"{}")
        assert report(job, "checkpoint", {"step": step, "epoch": step // 2, "path": key}, seq=seq)
    for seq, step in enumerate((4, 5), start=10):
        metrics = {"data": {"kind": "step", "step": step, "total_steps": 8}}
        assert report(job, "metrics", metrics, seq=seq)
    return keys


def dispatch_again(job, capture) -> FineTuningJob:
    with capture(execute=True):
        scheduling.jobs_dispatch()
    job.refresh_from_db()
    return job


def test_the_next_attempt_resumes_from_the_last_checkpoint_of_the_lost_one(
    dispatched, settings, sent, django_capture_on_commit_callbacks, tmp_path
):
    keys = train_two_epochs(dispatched)
    job = requeue(dispatched, settings, django_capture_on_commit_callbacks)
    job = dispatch_again(job, django_capture_on_commit_callbacks)
    spec = sent[-1]
    assert spec["attempt"] == 2
    assert spec["resume"] == {"checkpoints": keys, "step": 4}

    # The worker copies them into its attempt, then says so in its "started".
    store = get_artifact_store()
    carried = carry_checkpoints(spec, store)
    assert carried == {key: key.replace("/attempt-1/", "/attempt-2/") for key in keys}
    assert store.exists(f"{carried[keys[1]]}/adapter_config.json")
    assert store.exists(f"{protocol.training_state_key(carried[keys[1]])}/state.json")
    work = tmp_path / "work"
    resume = fetch_resume_point(store, carried, work)
    assert resume == (work / "checkpoints" / "epoch-2", work / "training-state" / "epoch-2")
    assert (resume[0] / "adapter_config.json").is_file()
    assert (resume[1] / "state.json").is_file()
    trainer_spec = training_spec(
        spec,
        model_root=settings.MODEL_ROOT,
        training_file=work / "train.jsonl",
        validation_file=None,
        output_dir=work,
        resume=resume,
    )
    assert trainer_spec["resume_from"] == str(resume[0])
    assert trainer_spec["resume_state"] == str(resume[1])

    with django_capture_on_commit_callbacks(execute=True):
        assert report(job, "started", {"worker": "gpu-2", "carried": carried}, seq=1)
    rows = list(JobCheckpoint.unscoped.filter(job=job).order_by("step_number"))
    assert [(row.attempt, row.step_number, row.artifact_key) for row in rows] == [
        (2, 2, carried[keys[0]]),
        (2, 4, carried[keys[1]]),
    ]
    steps = [
        data["step"] for data in job.events.filter(type="metrics").values_list("data", flat=True)
    ]
    assert steps == [4]  # the metrics up to the checkpoint stay; step 5 is redone
    assert not store.exists(protocol.attempt_prefix(job.public_id, 1))


def test_a_model_made_from_a_carried_checkpoint_follows_it(
    dispatched, settings, sent, acme, django_capture_on_commit_callbacks
):
    train_two_epochs(dispatched)
    checkpoint = JobCheckpoint.unscoped.get(job=dispatched, step_number=2)
    model = fine_tuned_model_from_checkpoint(tenant=acme, checkpoint=checkpoint)
    job = dispatch_again(
        requeue(dispatched, settings, django_capture_on_commit_callbacks),
        django_capture_on_commit_callbacks,
    )
    carried = carry_checkpoints(sent[-1], get_artifact_store())
    with django_capture_on_commit_callbacks(execute=True):
        assert report(job, "started", {"worker": "gpu-2", "carried": carried}, seq=1)
    model.refresh_from_db()
    assert model.artifact_key == checkpoint_key(job, "epoch-1", attempt=2)
    assert get_artifact_store().exists(f"{model.artifact_key}/adapter_config.json")


def test_an_attempt_whose_checkpoints_are_gone_starts_from_step_0(
    dispatched, settings, sent, django_capture_on_commit_callbacks
):
    keys = train_two_epochs(dispatched)
    get_artifact_store().delete(keys[1])
    dispatch_again(
        requeue(dispatched, settings, django_capture_on_commit_callbacks),
        django_capture_on_commit_callbacks,
    )
    assert carry_checkpoints(sent[-1], get_artifact_store()) == {}
    assert not get_artifact_store().exists(checkpoint_key(dispatched, "epoch-1", attempt=2))


def test_an_operator_retry_starts_from_step_0(dispatched, sent, django_capture_on_commit_callbacks):
    train_two_epochs(dispatched)
    assert report(dispatched, "outcome", {"status": "failed", "code": "x", "message": "y"}, seq=20)
    dispatched.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        services.job_retry(job=dispatched)
    assert sent[-1]["attempt"] == 2 and sent[-1]["resume"] is None


def test_a_handed_back_job_is_queued_again_at_once_and_not_counted(
    dispatched, settings, sent, django_capture_on_commit_callbacks
):
    keys = train_two_epochs(dispatched)
    settings.JOB_MAX_ATTEMPTS = 2
    outcome = {"status": "handed_back", "step": 4, "checkpoint": keys[1]}
    with django_capture_on_commit_callbacks(execute=True):
        assert report(dispatched, "outcome", outcome, seq=30)
    job = FineTuningJob.unscoped.get(pk=dispatched.pk)
    # Dispatched again straight away (the slot was given back), as attempt 2.
    assert (job.status, job.attempt, job.handbacks) == ("queued", 2, 1)
    assert job.dispatched_at is not None and sent[-1]["attempt"] == 2
    assert sent[-1]["resume"] == {"checkpoints": keys, "step": 4}
    assert services.attempts_made(job) == 1
    assert (
        "The worker running the job was stopped (a drain); the job is queued again and it "
        "resumes from its checkpoint at step 4."
    ) in job.events.values_list("message", flat=True)
    # Losing attempt 2 is the job's first counted loss: within JOB_MAX_ATTEMPTS (2), it is
    # queued again (had the hand-back counted, this would be the second, and it would fail).
    assert report(job, "started", {"worker": "gpu-2"}, seq=1)
    lost(job, settings)
    with django_capture_on_commit_callbacks(execute=True):
        assert scheduling.requeue_or_fail_lost_jobs()["requeued"] == 1
    assert FineTuningJob.unscoped.get(pk=job.pk).attempt == 3
