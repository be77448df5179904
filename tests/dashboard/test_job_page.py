"""The live job page's polling: metrics since a cursor, and when the page stops asking."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.dashboard import test_finetuning as job_pages
from tests.finetuning.conftest import make_training_file
from tokenmill.finetuning import services
from tokenmill.finetuning.models import FineTuningJob, JobCheckpoint

job_url, make_job = job_pages.job_url, job_pages.make_job
running_job = job_pages.running_job  # the fixture: a job in its third of eight steps


@pytest.fixture(autouse=True)
def _private_store(artifact_store, demo_model_path):
    """This test's own artifact store."""


@pytest.fixture
def training_file(acme):
    return make_training_file(acme)


def step(job, number: int, loss: float, *, total: int = 8):
    services.event_add(
        job,
        f"Step {number}/{total}",
        kind="metrics",
        data={"kind": "step", "step": number, "total_steps": total, "train_loss": loss},
    )


def test_a_poll_reads_only_the_metrics_after_its_cursor(alice_client, running_job):
    url = job_url("job-status", running_job)
    first = alice_client.get(url).json()
    step(running_job, 4, 1.1)
    step(running_job, 5, 0.9)

    body = alice_client.get(url, {"after": first["cursor"]}).json()

    assert body["metrics"] == [{"s": 4, "t": 1.1, "n": 8}, {"s": 5, "t": 0.9, "n": 8}]
    assert body["step"] == 5 and body["train_loss"] == 0.9
    assert body["valid_loss"] == 1.6  # the last validation report, from before the cursor
    assert body["cursor"] != first["cursor"]
    assert alice_client.get(url, {"after": body["cursor"]}).json()["metrics"] == []


def test_the_poll_costs_the_same_however_many_metrics_the_job_has(
    alice_client, running_job, django_assert_max_num_queries
):
    url = job_url("job-status", running_job)
    cursor = alice_client.get(url).json()["cursor"]
    for number in range(4, 300):
        step(running_job, number, 1.0, total=400)
    cursor = alice_client.get(url, {"after": cursor}).json()["cursor"]
    query = {"after": cursor, "events": 301, "checkpoints": 1}

    with django_assert_max_num_queries(20) as captured:
        body = alice_client.get(url, query).json()

    assert body["metrics"] == []
    assert body["step"] == 299
    # No query reads the whole metrics history: each is bounded by the cursor or LIMIT 1.
    reads = [q["sql"] for q in captured.captured_queries if "finetuning_jobevent" in q["sql"]]
    assert all(" > " in sql or "LIMIT" in sql or "COUNT" in sql for sql in reads), reads


def test_a_long_backlog_comes_in_pages(alice_client, running_job, monkeypatch):
    from tokenmill.dashboard import job_progress

    monkeypatch.setattr(job_progress, "METRICS_PAGE", 2)
    url = job_url("job-status", running_job)

    first = alice_client.get(url).json()
    second = alice_client.get(url, {"after": first["cursor"]}).json()

    assert [p["s"] for p in first["metrics"]] == [1, 2]
    assert first["more"] is True
    assert [p["s"] for p in second["metrics"]] == [3, 3]
    assert second["more"] is False


def test_the_page_follows_a_job_until_it_has_ended_and_settled(alice_client, acme, training_file):
    running = make_job(acme, training_file, status="running")
    just_cancelled = make_job(
        acme, training_file, status="cancelled", finished_at=timezone.now(), released_at=None
    )
    just_ended = make_job(
        acme,
        training_file,
        status="succeeded",
        finished_at=timezone.now() - timedelta(seconds=5),
        released_at=timezone.now() - timedelta(seconds=5),
    )
    long_ago = timezone.now() - timedelta(hours=1)
    settled = make_job(
        acme, training_file, status="failed", finished_at=long_ago, released_at=long_ago
    )

    follows = {
        job.status: alice_client.get(job_url("job-status", job)).json()["follows"]
        for job in (running, just_cancelled, just_ended, settled)
    }

    assert follows == {"running": True, "cancelled": True, "succeeded": True, "failed": False}


def test_a_cancelled_job_shows_its_outcome_and_late_checkpoint_on_the_next_poll(
    alice_client, running_job
):
    url = job_url("job-status", running_job)
    before = alice_client.get(url).json()
    assert "Cancel job" in before["html"]["actions"]

    services.job_cancel(tenant=running_job.tenant, job=running_job)
    JobCheckpoint.objects.create(
        tenant=running_job.tenant,
        job=running_job,
        step_number=6,
        epoch=2,
        fine_tuned_model_checkpoint="ft:tiny-chat:acme:bot:x:ckpt-step-6",
        artifact_key="jobs/x/checkpoints/epoch-2",
    )
    after = alice_client.get(
        url,
        {"after": before["cursor"], "events": before["n_events"], "checkpoints": 1},
    ).json()

    assert after["status"] == "cancelled" and after["follows"] is True
    assert after["html"]["actions"].strip() == ""  # no Cancel button any more
    assert "This job was cancelled" in after["html"]["outcome"]
    assert "Step 6" in after["html"]["checkpoints"]
    assert after["n_checkpoints"] == 2
    assert FineTuningJob.unscoped.get(pk=running_job.pk).status == "cancelled"


def test_the_chart_has_axis_titles(alice_client, running_job):
    page = alice_client.get(job_url("job-detail", running_job)).content.decode()

    assert 'text-anchor="middle">Step</text>' in page
    assert 'text-anchor="middle">Loss</text>' in page
    assert '<script id="chart-points" type="application/json">' in page


def test_one_report_with_both_the_step_and_the_validation_loss(alice_client, acme, training_file):
    job = make_job(acme, training_file, status="running")
    services.event_add(
        job,
        "Step 4/8",
        kind="metrics",
        data={"kind": "step", "step": 4, "total_steps": 8, "train_loss": 1.2, "valid_loss": 1.3},
    )

    body = alice_client.get(job_url("job-status", job)).json()

    assert (body["step"], body["train_loss"], body["valid_loss"]) == (4, 1.2, 1.3)
