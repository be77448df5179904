"""Adapter fan-out end to end: the real trainer, the real serving agent, real vLLM.

The agent runs as its own process with a database URL that cannot work: it needs
only the artifact store and the broker, as on a replica host.
"""

import os
import subprocess
import sys
import time

import httpx
import pytest
from django.conf import settings
from django.db import connection

from gpu_inference.serving.servers import agent_command
from gpu_inference.serving.supervisor import State
from gpu_inference.serving.vllm_api import VllmClient
from tests.finetuning.conftest import make_training_file
from tests.gpu_inference.helpers import PIRATE_CHATS, chat_example
from tests.processes import ROOT
from tokenmill.finetuning import services
from tokenmill.finetuning.models import FineTunedModel
from tokenmill.finetuning.params import JobRequest

SECONDS = 15  # "within seconds": measured ~1-3 s on two busy cores
PROMPTS = [question for question, _ in PIRATE_CHATS[:6]]


@pytest.fixture
def agent(vllm_chat, artifact_store, tmp_path):
    unreachable = (
        "sqlite:////nonexistent/tokenmill.sqlite3"
        if connection.vendor == "sqlite"
        else "postgres://nobody@127.0.0.1:9/none"
    )
    filesystem = settings.CELERY_BROKER_URL.startswith("filesystem://")
    command = agent_command(
        python=sys.executable,
        base_model="tiny-chat",
        vllm_url=vllm_chat.base_url,
        artifact_store=settings.ARTIFACT_STORE_URL,
        cache_dir=tmp_path / "adapter-cache",
        broker_url=settings.CELERY_BROKER_URL,
        broker_folder=settings.CELERY_BROKER_FOLDER if filesystem else None,
        name="test-fanout",  # stable: a later session reuses its queue
        interval=600,  # so a load within seconds proves the wake-up, not the polling
        check=1,
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": unreachable,
        "VLLM_API_KEY": vllm_chat.api_key,
    }
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    time.sleep(2)  # its wake-up queue is bound before anything is published
    yield process
    process.terminate()
    process.wait(10)


def answers(vllm_chat, model: str) -> list[str]:
    headers = {"Authorization": f"Bearer {vllm_chat.api_key}"}
    replies = []
    for prompt in PROMPTS:
        response = httpx.post(
            f"{vllm_chat.openai_base_url}/chat/completions",
            headers=headers,
            json={
                "model": model,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": 16,
                "temperature": 0,
            },
            timeout=60,
        )
        assert response.status_code == 200, response.text
        replies.append(response.json()["choices"][0]["message"]["content"])
    return replies


def seconds_until_listed(vllm_chat, name: str, *, listed: bool) -> float:
    started = time.monotonic()
    with VllmClient(vllm_chat.base_url, api_key=vllm_chat.api_key) as client:
        while time.monotonic() - started < SECONDS:
            if (name in client.adapters()) == listed:
                return time.monotonic() - started
            time.sleep(0.1)
    pytest.fail(f"{name} still {'not ' if listed else ''}listed by vLLM after {SECONDS}s")


@pytest.mark.slow
def test_a_fine_tune_is_served_within_seconds_survives_a_restart_and_stops_when_deleted(
    vllm_chat, agent, acme, settings, demo_model_path, django_capture_on_commit_callbacks
):
    settings.JOB_HEARTBEAT_SECONDS = 3600  # training in this process takes seconds
    file = make_training_file(acme, [chat_example(q, a) for q, a in PIRATE_CHATS])
    # Tasks run eagerly: prepared, dispatched, trained by the real trainer, succeeded.
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(
            tenant=acme,
            request=JobRequest(
                model="tiny-chat", training_file=file.public_id, suffix="pirate", seed=0
            ),
        )
    job.refresh_from_db()
    assert job.status == "succeeded", list(job.events.values_list("message", flat=True))
    model_id = job.fine_tuned_model

    loaded_after = seconds_until_listed(vllm_chat, model_id, listed=True)
    print(f"adapter listed by vLLM {loaded_after:.1f}s after the job succeeded")
    tuned, base = answers(vllm_chat, model_id), answers(vllm_chat, "tiny-chat")
    assert sum(reply.startswith("Ahoy, matey!") for reply in tuned) >= 5, tuned
    assert not any(reply.startswith("Ahoy, matey!") for reply in base), base

    # vLLM forgets runtime adapters when it restarts: the agent gives this one back.
    vllm_chat.process.restart()
    assert vllm_chat.process.wait_for((State.STARTING, State.RESTARTING), 30).state != State.READY
    vllm_chat.wait_ready()
    back_after = seconds_until_listed(vllm_chat, model_id, listed=True)
    print(f"adapter back {back_after:.1f}s after vLLM was ready again")
    assert sum(reply.startswith("Ahoy, matey!") for reply in answers(vllm_chat, model_id)) >= 5

    with django_capture_on_commit_callbacks(execute=True):
        services.fine_tuned_model_delete(tenant=acme, model=FineTunedModel.unscoped.get(job=job))
    gone_after = seconds_until_listed(vllm_chat, model_id, listed=False)
    print(f"adapter unloaded {gone_after:.1f}s after the model was deleted")
    refused = httpx.post(
        f"{vllm_chat.openai_base_url}/chat/completions",
        headers={"Authorization": f"Bearer {vllm_chat.api_key}"},
        json={"model": model_id, "messages": [{"role": "user", "content": PROMPTS[0]}]},
        timeout=60,
    )
    assert refused.status_code == 404
