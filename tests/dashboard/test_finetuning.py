"""The fine-tuning pages: the new-job form and its estimate, the jobs list, the live job page."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from gpu_inference.formats import ExampleEncoder
from gpu_inference.holdout import holdout_for
from gpu_inference.hyperparameters import auto_epochs
from tests.finetuning.conftest import chat_examples, make_training_file
from tokenmill.finetuning import services
from tokenmill.finetuning.models import FineTuningJob, JobCheckpoint
from tokenmill.finetuning.params import JobRequest

pytestmark = pytest.mark.django_db

NEW = reverse("dashboard:job-create")
ESTIMATE = reverse("dashboard:job-estimate")


@pytest.fixture(autouse=True)
def _private_store(artifact_store, demo_model_path):
    """This test's own artifact store; estimates count with the real demo tokenizer."""


@pytest.fixture
def training_file(acme):
    return make_training_file(acme)


# Of make_training_file's 20 examples, a job without a validation file holds 2 out.
TRAINED = 18


@pytest.fixture
def tokens_per_epoch(demo_model_path, training_file) -> int:
    """What training counts for the examples it trains on: tiny-chat's tokens, truncated."""
    encoder = ExampleEncoder(demo_model_path, context_length=256)
    kept, _ = holdout_for(20, training_file.public_id).split(chat_examples())
    assert len(kept) == TRAINED
    return sum(min(encoder.count_tokens(example), 256) for example in kept)


def new_job(client, file, **fields):
    data = {"model": "tiny-chat", "training_file": file.public_id, "training_type": "lora"}
    return client.post(NEW, {**data, **fields})


def make_job(tenant, training_file, **fields) -> FineTuningJob:
    job = services.job_create(
        tenant=tenant,
        request=JobRequest(model="tiny-chat", training_file=training_file.public_id, suffix="bot"),
    )
    if fields:
        FineTuningJob.unscoped.filter(pk=job.pk).update(**fields)
        job.refresh_from_db()
    return job


def job_url(name: str, job: FineTuningJob) -> str:
    return reverse(f"dashboard:{name}", args=[job.public_id])


def field_errors(page: str, field: str) -> list[str]:
    """The errors shown inside the form field `field`."""
    block = re.search(
        rf'<div class="field has-error">\s*<label class="label" for="id_{field}">.*?</div>',
        page,
        re.S,
    )
    return re.findall(r'<p class="error"[^>]*>(.*?)</p>', block.group(0)) if block else []


def test_the_form_offers_only_this_organizations_ready_fine_tuning_files(
    alice_client, acme, globex, training_file
):
    broken = make_training_file(acme, status="error")
    notes = make_training_file(acme, purpose="user_data")
    pending = make_training_file(acme, status="uploaded")
    foreign = make_training_file(globex)

    page = alice_client.get(NEW).content.decode()

    assert f'<option value="{training_file.public_id}" selected>' in page
    for file in (broken, notes, pending, foreign):
        assert file.public_id not in page
    assert '<option value="tiny-chat" selected>Tiny Chat (demo) · tiny-chat</option>' in page
    # "Fine-tune on this file" on a file's page chooses that file.
    second = make_training_file(acme)
    chosen = alice_client.get(NEW, {"training_file": second.public_id}).content.decode()
    assert f'<option value="{second.public_id}" selected>' in chosen


def test_the_form_shows_the_exact_estimate_before_launch(
    alice_client, training_file, tokens_per_epoch
):
    page = alice_client.get(NEW).content.decode()

    epochs = auto_epochs(TRAINED)
    expected = epochs * tokens_per_epoch
    assert f"<dd data-tokens-per-epoch>{tokens_per_epoch:,}</dd>" in page
    assert f"<dd data-estimated-tokens>{expected:,}</dd>" in page
    assert f'<span class="badge">auto</span> {epochs}' in page
    assert f"Epochs are chosen automatically: {epochs} for {TRAINED} examples" in page
    assert "+ 2 held out for the evaluation report" in page
    assert "Counted with tiny-chat's tokenizer, each example truncated to 256 tokens" in page


def test_the_estimate_endpoint_follows_the_fields(alice_client, training_file, tokens_per_epoch):
    query = {
        "model": "tiny-chat",
        "training_file": training_file.public_id,
        "training_type": "lora",
    }

    fixed = alice_client.get(ESTIMATE, {**query, "epochs": "2"}).json()
    auto = alice_client.get(ESTIMATE, query).json()

    assert {key: fixed[key] for key in fixed if key != "html"} == {
        "ok": True,
        "n_examples": TRAINED,
        "tokens_per_epoch": tokens_per_epoch,
        "n_epochs": 2,
        "epochs_auto": False,
        "estimated_trained_tokens": 2 * tokens_per_epoch,
        "exact": True,
    }
    assert f"{2 * tokens_per_epoch:,}" in fixed["html"]
    assert auto["epochs_auto"] is True
    assert auto["estimated_trained_tokens"] == auto_epochs(TRAINED) * tokens_per_epoch


def test_the_estimate_endpoint_explains_what_is_missing(alice_client, training_file):
    missing = alice_client.get(ESTIMATE, {"model": "tiny-chat", "training_type": "lora"}).json()
    bad = alice_client.get(
        ESTIMATE,
        {
            "model": "tiny-chat",
            "training_file": training_file.public_id,
            "training_type": "lora",
            "epochs": "99",
        },
    ).json()

    assert missing["ok"] is False
    assert "Choose a training file." in missing["html"]
    assert bad["ok"] is False
    message = "hyperparameters.n_epochs must be at least 1 and at most 50, got 99."
    assert bad["errors"] == {"epochs": [{"message": message, "code": "invalid_value"}]}


def test_review_shows_the_estimate_without_launching(alice_client, training_file, tokens_per_epoch):
    response = new_job(alice_client, training_file, epochs="3", action="review")

    assert response.status_code == 200
    assert f"<dd data-estimated-tokens>{3 * tokens_per_epoch:,}</dd>" in response.content.decode()
    assert not FineTuningJob.unscoped.exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"epochs": "0"},
            "epochs",
            "hyperparameters.n_epochs must be at least 1 and at most 50, got 0.",
        ),
        ({"epochs": "many"}, "epochs", "Enter a whole number."),
        (
            {"batch_size": "300"},
            "batch_size",
            "hyperparameters.batch_size must be at least 1 and at most 256, got 300.",
        ),
        (
            {"learning_rate_multiplier": "0.001"},
            "learning_rate_multiplier",
            "hyperparameters.learning_rate_multiplier must be at least 0.01 and at most 10, got 0.001.",
        ),
        (
            {"suffix": "a:b"},
            "suffix",
            "suffix must be 1 to 64 characters of letters, digits, &#x27;.&#x27;, &#x27;_&#x27; or &#x27;-&#x27;.",
        ),
        ({"seed": "-1"}, "seed", "seed must be a whole number from 0 to 2147483647."),
        ({"training_file": ""}, "training_file", "Choose a training file."),
    ],
)
def test_errors_are_shown_on_their_field(alice_client, training_file, fields, field, message):
    response = new_job(alice_client, training_file, **fields)

    assert response.status_code == 400
    page = response.content.decode()
    assert field_errors(page, field) == [message]
    assert "Fix the fields marked in red to see the estimate." in page
    assert not FineTuningJob.unscoped.exists()


def test_launching_creates_the_job_and_opens_its_page(
    alice_client, acme, training_file, tokens_per_epoch
):
    response = new_job(
        alice_client, training_file, suffix="support", epochs="4", batch_size="8", seed="7"
    )

    job = FineTuningJob.unscoped.get(tenant=acme)
    assert response.status_code == 302
    assert response["Location"] == job_url("job-detail", job)
    assert (job.suffix, job.seed, job.training_type, job.created_by_key) == (
        "support",
        7,
        "lora",
        None,
    )
    assert job.hyperparameters == {"n_epochs": 4, "batch_size": 8}
    assert job.status == "validating_files"
    page = alice_client.get(response["Location"]).content.decode()
    assert f"Started {job.public_id}. It is validating its files." in page

    # The estimate shown before launch is what the platform records once it prepares the job.
    services.job_prepare(job_id=job.pk)
    job.refresh_from_db()
    assert job.estimated_trained_tokens == 4 * tokens_per_epoch


def test_the_jobs_list(alice_client, acme, training_file):
    succeeded = make_job(
        acme, training_file, status="succeeded", fine_tuned_model="ft:tiny-chat:acme:bot:abc"
    )
    running = make_job(acme, training_file, status="running")

    page = alice_client.get(reverse("dashboard:jobs")).content.decode()

    rows = re.findall(r'<tr id="job-.*?</tr>', page, re.S)
    assert [running.public_id in rows[0], succeeded.public_id in rows[1]] == [True, True]
    assert 'class="status status-job-running" data-job-status>Running<' in rows[0]
    assert 'class="status status-job-succeeded" data-job-status>Succeeded<' in rows[1]
    assert "ft:tiny-chat:acme:bot:abc" in rows[1]
    assert "tiny-chat" in rows[0] and "train.jsonl" in rows[0]
    assert "New fine-tuning job" in page


@pytest.fixture
def running_job(acme, training_file):
    """A job in its third of eight steps, with metrics events as the trainer reports them."""
    job = make_job(
        acme,
        training_file,
        status="running",
        resolved_hyperparameters={
            "n_epochs": 2,
            "batch_size": 4,
            "learning_rate_multiplier": 1.0,
            "learning_rate": 0.005,
            "lora_r": 16,
            "lora_alpha": 32,
        },
        estimated_trained_tokens=900,
        estimated_finish=timezone.now() + timedelta(seconds=95),
    )
    start = job.created_at
    for step, loss in enumerate([2.5, 1.9, 1.4], start=1):
        services.event_add(
            job,
            f"Step {step}/8: training loss={loss:.4f}",
            kind="metrics",
            data={
                "kind": "step",
                "step": step,
                "total_steps": 8,
                "train_loss": loss,
                "tokens_per_second": 1234.5,
                "eta_seconds": 95,
            },
            at=start + timedelta(seconds=step),
        )
    services.event_add(
        job,
        "Epoch 1 (step 3): validation loss=1.6000",
        kind="metrics",
        data={"kind": "epoch", "epoch": 1, "step": 3, "valid_loss": 1.6},
        at=start + timedelta(seconds=4),
    )
    JobCheckpoint.objects.create(
        tenant=acme,
        job=job,
        step_number=3,
        epoch=1,
        metrics={"train_loss_mean": 1.93, "valid_loss": 1.6},
        fine_tuned_model_checkpoint="ft:tiny-chat:acme:bot:x:ckpt-step-3",
        artifact_key="jobs/x/checkpoints/epoch-1",
    )
    return job


def test_the_job_page_shows_progress_events_and_the_loss_chart(alice_client, running_job):
    page = alice_client.get(job_url("job-detail", running_job)).content.decode()

    assert "Step 3 of 8" in page
    assert 'aria-valuenow="37"' in page  # 3 of 8 steps
    assert "1,234.5" in page  # tokens per second
    assert re.search(r"<dd>1 min 3[0-5] s</dd>", page)  # time left
    # The chart: one line through the three training losses, one validation point.
    svg = re.search(r'<svg class="loss-chart".*?</svg>', page, re.S).group(0)
    [train] = re.findall(r'<g class="chart-series series-train">\s*<path d="(M[^"]+)"', svg)
    assert len(train.split(" L")) == 3
    assert '<circle cx="' in svg and "Step 3: validation loss 1.6000" in svg
    assert "Training loss <strong>1.4000</strong>" in page
    assert "Validation loss <strong>1.6000</strong>" in page
    # Events, newest first.
    events = re.findall(r'<span class="event-message">(.*?)</span>', page)
    assert events[:2] == [
        "Epoch 1 (step 3): validation loss=1.6000",
        "Step 3/8: training loss=1.4000",
    ]
    assert events[-1] == f"Validating training file: {running_job.training_file.public_id}"
    # Checkpoints and the chosen hyperparameters.
    assert "ft:tiny-chat:acme:bot:x:ckpt-step-3" in page
    assert "epoch 1 · train 1.9300 · valid 1.6000" in page
    assert '<dt>Batch size</dt><dd data-hyper="batch_size">4</dd>' in page
    assert "<dt>LoRA rank / alpha</dt><dd>16 / 32</dd>" in page
    assert 'data-follow="true"' in page
    assert "Cancel job" in page


def test_the_status_endpoint(alice_client, running_job):
    url = job_url("job-status", running_job)

    body = alice_client.get(url).json()

    html = body.pop("html")
    seconds_left = body.pop("seconds_left")
    cursor = body.pop("cursor")
    assert 85 < seconds_left <= 95
    assert body == {
        "id": running_job.public_id,
        "status": "running",
        "status_label": "Running",
        "is_terminal": False,
        "follows": True,
        "step": 3,
        "total_steps": 8,
        "progress_percent": 37,
        "tokens_per_second": 1234.5,
        "train_loss": 1.4,
        "valid_loss": 1.6,
        "trained_tokens": None,
        "estimated_trained_tokens": 900,
        "fine_tuned_model": None,
        "error": None,
        "n_events": 5,
        "n_checkpoints": 1,
        "metrics": [
            {"s": 1, "t": 2.5, "n": 8},
            {"s": 2, "t": 1.9, "n": 8},
            {"s": 3, "t": 1.4, "n": 8},
            {"s": 3, "v": 1.6},
        ],
        "more": False,
    }
    assert cursor.startswith("ftevent-")
    every_poll = {"status", "actions", "outcome", "progress", "details", "hyperparameters"}
    assert set(html) == every_poll | {"events", "checkpoints"}
    assert "<dt>Batch size</dt>" in html["hyperparameters"]
    # Nothing new since the last poll: no metrics, and only the parts that cost no query.
    again = alice_client.get(url, {"events": 5, "checkpoints": 1, "after": cursor}).json()
    assert set(again["html"]) == every_poll
    assert (again["metrics"], again["cursor"]) == ([], cursor)


def test_a_job_without_metrics_shows_an_empty_chart(alice_client, acme, training_file):
    job = make_job(acme, training_file)

    page = alice_client.get(job_url("job-detail", job)).content.decode()

    assert "No metrics yet." in page
    assert '<svg class="loss-chart"' not in page
    assert "Validating the files…" in page


def test_a_succeeded_job_shows_its_model_with_a_copy_button(alice_client, acme, training_file):
    job = make_job(
        acme,
        training_file,
        status="succeeded",
        fine_tuned_model="ft:tiny-chat:acme:bot:abc",
        trained_tokens=1234,
        finished_at=timezone.now() - timedelta(minutes=5),
        released_at=timezone.now() - timedelta(minutes=5),
    )

    page = alice_client.get(job_url("job-detail", job)).content.decode()

    assert (
        '<code id="fine-tuned-model" class="secret-value">ft:tiny-chat:acme:bot:abc</code>' in page
    )
    assert 'data-copy="fine-tuned-model"' in page
    assert "<dd data-trained-tokens>1,234</dd>" in page
    assert 'data-follow="false"' in page  # it has ended and settled: nothing more to ask
    assert "Cancel job" not in page


def test_a_failed_job_shows_its_error(alice_client, acme, training_file):
    job = make_job(
        acme,
        training_file,
        status="failed",
        error={"code": "out_of_memory", "message": "the device ran out of memory", "param": None},
    )

    page = alice_client.get(job_url("job-detail", job)).content.decode()

    assert "<code>out_of_memory</code>" in page
    assert "the device ran out of memory" in page


def test_cancel_asks_then_cancels(alice_client, acme, training_file):
    job = make_job(acme, training_file)

    assert (
        "Cancel " + job.public_id + "?"
        in alice_client.get(job_url("job-cancel", job)).content.decode()
    )
    response = alice_client.post(job_url("job-cancel", job))

    assert response.status_code == 302
    assert response["Location"] == job_url("job-detail", job)
    job.refresh_from_db()
    assert job.status == "cancelled"
    page = alice_client.get(response["Location"]).content.decode()
    assert f"Cancelled {job.public_id}." in page
    assert "This job was cancelled" in page

    again = alice_client.post(job_url("job-cancel", job), follow=True).content.decode()
    assert f"Job {job.public_id} has already cancelled and cannot be cancelled." in again


def test_a_viewer_watches_but_cannot_launch_or_cancel(dave_client, acme, training_file):
    job = make_job(acme, training_file)

    page = dave_client.get(job_url("job-detail", job)).content.decode()
    assert job.public_id in page and "Cancel job" not in page
    assert "New fine-tuning job" not in dave_client.get(reverse("dashboard:jobs")).content.decode()

    assert dave_client.get(NEW).status_code == 403
    assert new_job(dave_client, training_file).status_code == 403
    assert dave_client.post(job_url("job-cancel", job)).status_code == 403
    job.refresh_from_db()
    assert job.status == "validating_files"
    assert FineTuningJob.unscoped.count() == 1


@pytest.mark.parametrize("name", ["job-detail", "job-status", "job-cancel"])
def test_another_organizations_job_is_not_found(charlie_client, acme, training_file, name):
    job = make_job(acme, training_file)

    assert charlie_client.get(job_url(name, job)).status_code == 404
    assert charlie_client.post(job_url(name, job)).status_code in (404, 405)
    job.refresh_from_db()
    assert job.status == "validating_files"


def test_another_organizations_file_cannot_be_trained_on(charlie_client, globex, training_file):
    make_training_file(globex)  # so charlie gets the form
    response = new_job(charlie_client, training_file)

    assert response.status_code == 400
    assert field_errors(response.content.decode(), "training_file") == [
        f"Select a valid choice. {training_file.public_id} is not one of the available choices."
    ]
    estimate = charlie_client.get(
        ESTIMATE,
        {"model": "tiny-chat", "training_file": training_file.public_id, "training_type": "lora"},
    ).json()
    assert estimate["ok"] is False
    assert not FineTuningJob.unscoped.exists()
