"""Real worker processes: JSON lines with the job id, and task metrics in the shared folder."""

import json
from pathlib import Path

import pytest

from tests.finetuning.conftest import FAKE_TRAINER
from tests.finetuning.test_workers import create_job, job_status, wait_for
from tests.observability.conftest import Scrape
from tests.processes import (
    gpu_node_env,
    start_worker,
    stop_worker,
    store_environment,
    worker_database_url,
)
from tokenmill.observability.endpoints import render_metrics
from workers.celery import app

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def json_lines(path: Path) -> list[dict]:
    """The log lines of a worker's output (Celery's start banner is printed, not logged)."""
    found = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


@pytest.fixture
def workers(settings, tmp_path, artifact_store, demo_model_path):
    common = {
        **store_environment(settings),
        "JOB_HEARTBEAT_SECONDS": "1",
        "LOG_FORMAT": "json",
    }
    logs = {"control": tmp_path / "control.log", "gpu": tmp_path / "gpu.log"}
    processes = [
        start_worker(
            "default,control",
            env={**common, "DATABASE_URL": worker_database_url()},
            log=logs["control"],
            loglevel="INFO",
        ),
        start_worker(
            "gpu",
            full_env=gpu_node_env(
                {**common, "TRAINER": FAKE_TRAINER, "FAKE_TRAINER_MODE": "crash"}
            ),
            app="gpu_inference.gpu_worker",
            log=logs["gpu"],
            loglevel="INFO",
        ),
    ]
    yield logs
    for process in processes:
        stop_worker(process)


def test_every_task_and_trainer_line_of_a_job_carries_its_job_id(workers, alice_api, acme):
    before = Scrape(render_metrics().decode())
    job_id = create_job(alice_api, acme)
    job = wait_for(
        lambda: (j := job_status(job_id)).is_terminal and j.released_at and j,
        what="the job to end",
    )
    assert job.status == "failed" and job.error["code"] == "internal_error"

    gpu = json_lines(workers["gpu"])
    crashed = [line for line in gpu if line["logger"] == "gpu_inference.worker"]
    assert crashed and all(line["job_id"] == job_id for line in crashed), crashed
    assert "the fake trainer crashed" in crashed[0]["exc_info"]
    ran = [line for line in gpu if "finetuning.train" in line["message"]]
    finished = [line for line in ran if "succeeded" in line["message"]]
    assert finished and all(line["job_id"] == job_id for line in finished), ran
    assert all({"time", "level", "logger", "message"} <= set(line) for line in gpu)

    control = json_lines(workers["control"])
    reported = [
        line
        for line in control
        if line["logger"] == "celery.app.trace" and "finetuning.report" in line["message"]
    ]
    assert reported and all(line.get("job_id") == job_id for line in reported), reported

    after = Scrape(render_metrics().decode())
    for task in ("finetuning.train", "finetuning.report"):
        done = {"task": task, "state": "SUCCESS"}
        assert after.value("tokenmill_celery_tasks_total", **done) > before.value(
            "tokenmill_celery_tasks_total", **done
        ), task
        timed = {"task": task}
        assert after.value("tokenmill_celery_task_duration_seconds_count", **timed) > (
            before.value("tokenmill_celery_task_duration_seconds_count", **timed)
        )


def test_a_failing_task_is_counted_by_its_exception(workers):
    before = Scrape(render_metrics().decode())
    result = app.send_task("finetuning.prepare", args=[10**9], queue="default")
    with pytest.raises(Exception):  # noqa: B017 - whatever the worker raised, it is counted
        result.get(timeout=60)
    failed = {"task": "finetuning.prepare", "state": "FAILURE"}
    # The result is stored before the worker's postrun hook counts the task.
    after = wait_for(
        lambda: (
            (
                (found := Scrape(render_metrics().decode())).value(
                    "tokenmill_celery_tasks_total", **failed
                )
                > before.value("tokenmill_celery_tasks_total", **failed)
            )
            and found
        ),
        timeout=10,
        what="the failure to be counted",
    )
    assert after.value("tokenmill_celery_tasks_total", **failed) == (
        before.value("tokenmill_celery_tasks_total", **failed) + 1
    )
    raised = [
        sample
        for sample in after.samples
        if sample.name == "tokenmill_celery_task_failures_total"
        and sample.labels["task"] == "finetuning.prepare"
    ]
    assert raised, after.text


def test_a_worker_host_serves_its_own_metrics_on_an_internal_port(tmp_path):
    import os
    import socket

    import httpx

    from tests.gateway.live import free_port
    from workers.probes import probe_once

    port = free_port()
    node = f"gpu-metrics-{os.getpid()}@{socket.gethostname()}"
    process = start_worker(
        "gpu",
        full_env=gpu_node_env({"METRICS_PORT": str(port), "LOG_FORMAT": "json"}),
        app="gpu_inference.gpu_worker",
        node=node,
        log=tmp_path / "gpu.log",
    )
    try:
        healthy, found = probe_once(app, node, timeout=60)
        assert healthy, found
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        scraped = Scrape(text)
        assert scraped.value("tokenmill_celery_tasks_total", task="workers.ping") >= 1
    finally:
        stop_worker(process)
