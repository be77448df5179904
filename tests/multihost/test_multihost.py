"""The platform across hosts: a GPU host dies mid-job, another finishes the job, and the
fine-tune answers through the gateway from a model server on a third host.

The control plane (web, the default and control worker, beat, the database) runs in
the root namespace; two GPU-worker hosts and a model-server host each run in a network
namespace of their own (tests/multihost/hosts.py), reaching only the test's Redis and
S3 server on the bridge, not the database and not the control plane's disk. Real
processes throughout: Celery workers, the real trainer, vLLM, the serving agent, the
official openai SDK as the client. The test brings its own Redis even on the embedded
default, since the filesystem broker cannot cross hosts.

Run it alone with `pytest -m multihost` (root is needed; elsewhere it skips, saying why).
"""

import json
import secrets
import shutil
import sys
import time

import pytest
from django.conf import settings
from django.db import connection
from openai import OpenAI

from gpu_inference.serving.vllm_api import VllmClient
from tests.finetuning.test_drain import step_metrics
from tests.finetuning.test_workers import job_status, messages, wait_for
from tests.gpu_inference.helpers import PIRATE_CHATS, chat_example
from tests.multihost.cluster import (
    PROBE,
    ControlPlane,
    Services,
    start_gpu_worker,
    start_model_server,
)
from tests.multihost.hosts import SUBNETS, Network
from tests.processes import ROOT
from tokenmill.catalog.services import replica_register

pytestmark = [
    pytest.mark.multihost,
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    # The test process talks to the hosts' addresses (vLLM's readiness) and the services.
    pytest.mark.allow_hosts(["127.0.0.1", "localhost", "::1", str(SUBNETS)]),
]

EPOCHS, BATCH = 20, 1  # 18 steps an epoch (2 of 20 examples held out), a checkpoint each
KILL_AFTER_CHECKPOINTS = 2
VLLM_READY_TIMEOUT = 900


@pytest.fixture
def network(tmp_path, tmp_path_factory, demo_model_path):
    network = Network.create(
        tmp_path,
        cwd=ROOT,
        # The control plane's disk: its var/ folder, the test's temporary folders (the
        # SQLite file, the web's cache, every log) and the base models.
        hidden=[settings.VAR_DIR, tmp_path_factory.getbasetemp(), settings.MODEL_ROOT],
    )
    yield network
    network.destroy()


@pytest.fixture
def services(network, tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: the hosts need a Redis they can reach")
    folder = tmp_path / "services"
    folder.mkdir()
    services = Services.start(network, folder)
    yield services
    services.stop()


@pytest.fixture
def control(services, tmp_path):
    """The control plane, started by the test once the replica is registered."""
    control = ControlPlane(services, tmp_path)
    yield control
    control.stop()


@pytest.fixture
def logs(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    return folder


def probe(host, *, targets: dict, paths: list[str]) -> dict:
    return json.loads(
        host.run([sys.executable, "-c", PROBE, json.dumps(targets), json.dumps(paths)])
    )


def database_target() -> tuple[str, int]:
    database = connection.settings_dict
    return (database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432))


def test_a_gpu_host_dies_mid_job_another_finishes_it_and_a_third_serves_the_fine_tune(
    network, services, control, logs, demo_model_path, alice_key
):
    models = {demo_model_path: f"models/{demo_model_path.name}"}
    gpu_hosts = [network.add_host(name, copy=models) for name in ("gpu-a", "gpu-b")]
    serving_host = network.add_host("serving", copy=models)

    # Each host reaches Redis and S3 on the bridge, not the database (nor the web), and
    # sees none of the control plane's folders.
    redis_port = int(services.redis_url.rsplit(":", 1)[1].split("/")[0])
    s3_port = int(services.s3_endpoint.rsplit(":", 1)[1])
    targets = {
        "redis": (network.gateway, redis_port),
        "s3": (network.gateway, s3_port),
        "database": database_target(),
        "database on the bridge": (network.gateway, database_target()[1]),
        "web": ("127.0.0.1", control.port),
        "web on the bridge": (network.gateway, control.port),
    }
    hidden = [str(settings.VAR_DIR), str(logs), str(demo_model_path)]
    if connection.vendor == "sqlite":
        hidden.append(connection.settings_dict["NAME"])
    for host in network.hosts:
        seen = probe(host, targets=targets, paths=hidden)
        assert seen["reaches"] == {
            "redis": True,
            "s3": True,
            "database": False,
            "database on the bridge": False,
            "web": False,
            "web on the bridge": False,
        }, host.name
        assert seen["sees"] == dict.fromkeys(hidden, False), host.name
        assert host.run(["hostname"]).strip() == host.name

    # The model server starts first: vLLM takes a minute or two to come up.
    api_key = f"vllm-{secrets.token_hex(8)}"
    server = start_model_server(serving_host, services, logs, api_key=api_key)
    replica_register(model_id="tiny-chat", url=server.url, api_key=api_key)
    control.start()
    for host in gpu_hosts:
        start_gpu_worker(host, services, logs)

    client = OpenAI(base_url=f"{control.url}/v1", api_key=alice_key, max_retries=0)
    body = "".join(json.dumps(chat_example(q, a)) + "\n" for q, a in PIRATE_CHATS).encode()
    uploaded = client.files.create(file=("pirate.jsonl", body), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="tiny-chat",
        training_file=uploaded.id,
        suffix="pirate",
        hyperparameters={"n_epochs": EPOCHS, "batch_size": BATCH},
    )

    # The host running it dies once it has stored checkpoints; the other one is idle.
    checkpointed = wait_for(
        lambda: (
            (
                (j := job_status(job.id)).checkpoints.count() >= KILL_AFTER_CHECKPOINTS
                or j.is_terminal
            )
            and j
        ),
        timeout=300,
        what="the first GPU host to store two checkpoints",
    )
    assert not checkpointed.is_terminal, messages(job.id)
    first = next(host for host in gpu_hosts if host.name == checkpointed.worker)
    second = next(host for host in gpu_hosts if host is not first)
    first.kill()
    killed_at = time.monotonic()
    assert first.pids() == []
    died = job_status(job.id)
    assert died.status == "running" and died.attempt == 1, messages(job.id)
    # Reports the host sent just before it died may still wait on the control queue, so
    # the checkpoint the job resumes from is this one or a later one.
    stored_before_kill = died.checkpoints.order_by("-step_number").first().step_number
    per_epoch = len(PIRATE_CHATS) - died.holdout["count"]
    total_steps = EPOCHS * per_epoch

    finished = wait_for(
        lambda: (j := job_status(job.id)).released_at and j,
        timeout=300,
        what="the second GPU host to finish the job",
    )
    recovered_in = time.monotonic() - killed_at
    assert finished.status == "succeeded", messages(job.id)
    assert finished.attempt == 2 and finished.worker == second.name
    assert any(
        message.startswith("The worker running attempt 1 stopped responding; the job is queued")
        for message in messages(job.id)
    ), messages(job.id)
    # A crash resumes from the last checkpoint the control plane recorded (an epoch's
    # end), and the second host trains only the steps after it.
    resumed = [
        data["resumed_from_step"]
        for data in finished.events.filter(attempt=2).values_list("data", flat=True)
        if data and "resumed_from_step" in data
    ]
    assert len(resumed) == 1, "\n".join(messages(job.id))
    resumed_from = resumed[0]
    assert stored_before_kill <= resumed_from < total_steps, "\n".join(messages(job.id))
    assert resumed_from % per_epoch == 0
    assert step_metrics(finished, 2) == list(range(resumed_from + 1, total_steps + 1))
    checkpoints = list(finished.checkpoints.order_by("step_number"))
    assert [c.epoch for c in checkpoints] == list(range(1, EPOCHS + 1))  # carried, then the rest
    assert all(c.artifact_key.startswith(f"jobs/{job.id}/attempt-2/") for c in checkpoints)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded"
    model_id = finished.fine_tuned_model

    # The serving host's agent loads the adapter from the store; the gateway routes the
    # fine-tune to that host, its only replica.
    with VllmClient(server.url, api_key=api_key, timeout=5) as vllm:
        wait_for(
            lambda: vllm.ready("tiny-chat"), timeout=VLLM_READY_TIMEOUT, what="vLLM to be ready"
        )
        wait_for(lambda: model_id in vllm.adapters(), timeout=60, what="the adapter to load")
    answers = [
        client.chat.completions.create(
            model=model_id,
            messages=[{"role": "user", "content": question}],
            max_tokens=16,
            temperature=0,
        )
        for question, _ in PIRATE_CHATS[:4]
    ]
    assert all(answer.model == model_id for answer in answers)
    replies = [answer.choices[0].message.content for answer in answers]
    assert sum(reply.startswith("Ahoy, matey!") for reply in replies) >= 3, replies
    # vLLM's access log: completions came in from the gateway's side of the bridge (the
    # job's evaluation, which the control plane runs once it succeeds, sends some too).
    from_gateway = [
        line
        for line in server.log.read_text().splitlines()
        if f" {network.gateway}:" in line and '"POST /v1/chat/completions' in line
    ]
    assert len(from_gateway) >= len(answers), server.log.read_text()[-3000:]
    print(
        f"multi-host: killed {first.name} with checkpoint step {stored_before_kill} stored;"
        f" {second.name} resumed from step {resumed_from} of {total_steps} and"
        f" finished {recovered_in:.1f}s after the kill"
    )
