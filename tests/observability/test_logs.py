"""JSON log lines with the request id, job id and tenant; secrets masked whatever logs them."""

import json
import logging
import os
import subprocess
import sys

import httpx
import pytest

from gpu_inference import telemetry
from tests.gateway.helpers import chat
from tests.processes import ROOT
from tokenmill.metering import ledger
from tokenmill.metering.models import ConsumedEvent

KEY = "tm-abcdefghi" + "Z" * 40


def record(message: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("tokenmill.test", logging.INFO, __file__, 1, message, args, exc_info)


def test_a_json_line_has_the_fields_and_the_context():
    with telemetry.log_context(request_id="req_1", job_id="ftjob-abc", tenant="acme"):
        line = json.loads(telemetry.JsonFormatter().format(record("hello %s", "world")))
    assert line["message"] == "hello world"
    assert line["level"] == "INFO"
    assert line["logger"] == "tokenmill.test"
    assert line["time"].endswith("+00:00")
    assert (line["request_id"], line["job_id"], line["tenant"]) == ("req_1", "ftjob-abc", "acme")
    outside = json.loads(telemetry.JsonFormatter().format(record("later")))
    assert "request_id" not in outside and "job_id" not in outside


def test_the_text_format_carries_the_same_context():
    with telemetry.log_context(job_id="ftjob-abc"):
        line = telemetry.TextFormatter().format(record("step 3"))
    assert line.endswith("INFO tokenmill.test step 3 [job_id=ftjob-abc]")


@pytest.mark.parametrize(
    "secret",
    [
        KEY,
        "sk_test_" + "4eC39HqLyjWDarjtT1zdp7dc",
        "sk_live_" + "51HxYzAbCdEfGhIjKlMn",
        "whsec_" + "abcdefghijklmnop",
        "Bearer some-upstream-token-123",
    ],
)
def test_secrets_are_masked_in_messages_and_tracebacks(secret):
    try:
        raise ValueError(f"bad {secret}")
    except ValueError:
        exc_info = sys.exc_info()
    for formatter in (telemetry.JsonFormatter(), telemetry.TextFormatter()):
        text = formatter.format(record("rejected %s", secret, exc_info=exc_info))
        body = secret.split(None, 1)[-1] if secret.startswith("Bearer") else secret
        assert body[8:] not in text, text
        assert telemetry.MASK in text


def test_a_bad_log_format_stops_the_start_naming_the_variable():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "LOG_FORMAT": "xml"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "LOG_FORMAT must be json or text, got 'xml'" in result.stderr


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("trace-42.a:b_c", "trace-42.a:b_c"),
        ("has space", ""),
        ("x" * 129, ""),
        ("new\nline", ""),
        ("", ""),
    ],
)
def test_only_a_sane_client_request_id_is_kept(given, kept):
    assert telemetry.sane_client_request_id(given) == kept


def post_chat(gateway, key: str, headers: dict) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json=chat(),
        headers={"authorization": f"Bearer {key}", **headers},
        timeout=30,
    )


def test_a_request_id_follows_the_request_into_logs_vllm_and_its_usage_event(
    backend, gateway, alice_key, captured, acme
):
    response = post_chat(gateway, alice_key, {"x-request-id": "trace-42"})
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert request_id.startswith("req_")  # ours: the usage event's id must be unique
    assert response.headers["x-client-request-id"] == "trace-42"
    assert backend.state.requests[-1]["headers"][b"x-request-id"].decode() == request_id
    ledger.aggregate()  # the usage event, from the database or the Redis stream, by its id
    assert ConsumedEvent.objects.filter(event_id=request_id).exists()
    (settled,) = [line for line in captured() if line["message"].startswith("settled ")]
    assert settled["request_id"] == request_id
    assert settled["client_request_id"] == "trace-42"
    assert settled["tenant"] == acme.slug


def test_an_insane_client_request_id_is_not_echoed(backend, gateway, alice_key):
    response = post_chat(gateway, alice_key, {"x-client-request-id": "a b c"})
    assert response.status_code == 200
    assert "x-client-request-id" not in response.headers


def test_the_web_server_writes_json_lines_too(tmp_path):
    from tests.gateway.live import free_port

    port = free_port()
    env = {**os.environ, "LOG_FORMAT": "json", "TOKENMILL_VAR_DIR": str(tmp_path)}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{ROOT / 'platform'}"
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tokenmill.asgi:application", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in server.stdout:
            lines.append(line)
            if "Application startup complete" in line:
                break
        started = [json.loads(line) for line in lines if "uvicorn" in line]
        assert started and started[-1]["logger"] == "uvicorn.error", lines
    finally:
        server.terminate()
        server.wait(timeout=20)
        server.stdout.close()
