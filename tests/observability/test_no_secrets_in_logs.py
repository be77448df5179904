"""A whole run's logs, web and workers at DEBUG, hold no key, no Stripe secret, no file content.

Web: the live ASGI app in this process, every logger at DEBUG (the client's own
loggers, openai and httpx, are the caller's side and left out). Workers: a real
control worker (validation, preparation, reports) with LOG_LEVEL=DEBUG and
`-l DEBUG`, its whole output scanned, banner included.
"""

import json
import secrets
import time

import httpx
import openai
import pytest

from tests.gateway.helpers import chat
from tests.processes import start_worker, stop_worker, store_environment, worker_database_url
from tokenmill.files.models import File

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

CLIENT_LOGGERS = ("openai", "httpx", "httpcore")
STRIPE_KEY = "sk_test_51" + secrets.token_hex(20)
WEBHOOK_SECRET = "whsec_" + secrets.token_hex(16)
FILE_PHRASE = "periwinkle-" + secrets.token_hex(6) + " lighthouse keeps quiet"


def training_lines() -> bytes:
    lines = [
        {
            "messages": [
                {"role": "user", "content": f"Question {n}: what does the {FILE_PHRASE}?"},
                {"role": "assistant", "content": f"Answer {n}: the {FILE_PHRASE}."},
            ]
        }
        for n in range(10)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture
def control_worker(settings, tmp_path, artifact_store, demo_model_path):
    settings.STRIPE_SECRET_KEY = STRIPE_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    log = tmp_path / "control.log"
    process = start_worker(
        "default,control",
        env={
            **store_environment(settings),
            "DATABASE_URL": worker_database_url(),
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "LOG_LEVEL": "DEBUG",
            "LOG_FORMAT": "json",
        },
        log=log,
        loglevel="DEBUG",
    )
    yield log
    stop_worker(process)


def test_no_secret_or_file_content_in_any_log_line(
    backend, gateway, alice_key, captured, control_worker
):
    web = gateway.url
    auth = {"authorization": f"Bearer {alice_key}"}
    created = httpx.post(
        web + "/api/v1/api-keys", json={"name": "ci", "scopes": ["models", "files"]}, headers=auth
    )
    assert created.status_code == 201, created.text
    new_key = created.json()["key"]
    doomed = httpx.post(web + "/api/v1/api-keys", json={"name": "old"}, headers=auth).json()
    assert httpx.delete(web + f"/api/v1/api-keys/{doomed['id']}", headers=auth).status_code == 200
    wrong_key = "tm-" + secrets.token_urlsafe(30)
    not_a_key = "sk-" + secrets.token_hex(24)

    client = openai.OpenAI(base_url=web + "/v1", api_key=new_key, max_retries=0)
    assert client.chat.completions.create(**chat(max_tokens=8)).choices
    assert "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(**chat(), stream=True)
        if chunk.choices
    )
    for refused in (wrong_key, not_a_key, doomed["key"]):
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=web + "/v1", api_key=refused, max_retries=0).models.list()
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(
                base_url=web + "/v1", api_key=refused, max_retries=0
            ).chat.completions.create(**chat())
    uploaded = client.files.create(file=("train.jsonl", training_lines()), purpose="fine-tune")
    deadline = time.monotonic() + 90
    while File.unscoped.get(public_id=uploaded.id).status == "uploaded":
        assert time.monotonic() < deadline, "the worker did not validate the file"
        time.sleep(0.3)
    assert File.unscoped.get(public_id=uploaded.id).status == "processed"

    web_lines = [line for line in captured() if not line["logger"].startswith(CLIENT_LOGGERS)]
    worker_log = control_worker.read_text()
    # The capture is real: both sides logged this run, at DEBUG, with its ids.
    assert any(line["level"] == "DEBUG" for line in web_lines)
    assert any(line.get("request_id") for line in web_lines)
    assert "files.validate" in worker_log and '"level": "DEBUG"' in worker_log

    everything = "\n".join(json.dumps(line) for line in web_lines) + "\n" + worker_log
    for name, secret in {
        "alice's key": alice_key,
        "the new key": new_key,
        "the revoked key": doomed["key"],
        "a wrong key": wrong_key,
        "a non-key": not_a_key,
        "the Stripe key": STRIPE_KEY,
        "the webhook secret": WEBHOOK_SECRET,
    }.items():
        assert secret not in everything, name
        assert secret[12:] not in everything, f"{name} (its secret part)"
    assert FILE_PHRASE not in everything
    assert FILE_PHRASE.split()[0] not in everything
