"""A local S3 server for tests: moto's server mode, one process per session on 127.0.0.1.

`s3_server` starts it (or uses the server that AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
name, e.g. a MinIO) and puts the endpoint and test credentials in the environment, so
boto3 in this process and in every process a test starts finds them. `s3_store_url`
gives each test a private prefix in one bucket.

The whole suite runs on S3 with `ARTIFACT_STORE_URL=s3://tokenmill-test/suite`: the
session then starts the server before any test, and every artifact goes there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.vllm import free_port

SUITE_STORE_URL = os.environ.get("ARTIFACT_STORE_URL", "")
SUITE_ON_S3 = SUITE_STORE_URL.startswith("s3://")
DEFAULT_BUCKET = "tokenmill-test"
START_TIMEOUT = 60


@dataclass
class S3Server:
    endpoint: str
    bucket: str

    def client(self):
        from gpu_inference.artifacts.s3 import s3_client

        return s3_client()

    def open_uploads(self, prefix: str) -> list[str]:
        """Keys of multipart uploads begun under `prefix` and neither completed nor aborted."""
        listed = self.client().list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return [upload["Key"] for upload in listed.get("Uploads", [])]


def start_moto(log_dir: Path, *, host: str = "127.0.0.1") -> tuple[subprocess.Popen, str]:
    """moto's S3 server listening on `host` (its own port), once it answers."""
    port = free_port()
    with (log_dir / "moto.log").open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = f"http://{host}:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"moto's S3 server exited at start: {(log_dir / 'moto.log').read_text()}")
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            return process, endpoint
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    pytest.fail(f"moto's S3 server did not answer within {START_TIMEOUT}s")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    given = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    process = None
    saved = {name: os.environ.get(name) for name in TEST_ENVIRONMENT}
    if given:
        endpoint = given
    else:
        process, endpoint = start_moto(tmp_path_factory.mktemp("s3"))
        os.environ.update(TEST_ENVIRONMENT, AWS_ENDPOINT_URL_S3=endpoint)
    bucket = urlsplit(SUITE_STORE_URL).netloc if SUITE_ON_S3 else DEFAULT_BUCKET
    server = S3Server(endpoint=endpoint, bucket=bucket)
    client = server.client()
    existing = {item["Name"] for item in client.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        client.create_bucket(Bucket=bucket)
    yield server
    if process is not None:
        process.terminate()
        process.wait(10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# Credentials for the local server only; never real ones.
TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "tokenmill-test",
    "AWS_SECRET_ACCESS_KEY": "tokenmill-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ENDPOINT_URL_S3": "",
}


@pytest.fixture
def s3_store_url(s3_server) -> str:
    """A prefix of the test bucket that no other test uses."""
    return f"s3://{s3_server.bucket}/tests/{uuid.uuid4().hex}"


@pytest.fixture(scope="session", autouse=SUITE_ON_S3)
def _suite_s3(request):
    """With ARTIFACT_STORE_URL=s3://..., the server runs before the first test."""
    if SUITE_ON_S3:
        request.getfixturevalue("s3_server")


@pytest.fixture(params=["local", "s3"])
def any_store_url(request, tmp_path) -> str:
    """A fresh store of each backend in turn: a folder under tmp_path, then an S3 prefix."""
    if request.param == "local":
        return str(tmp_path / "artifacts")
    return request.getfixturevalue("s3_store_url")
