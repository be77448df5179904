"""The processes of the multi-host test: the services the hosts share (Redis and S3 on
the bridge), the control plane in the root namespace, and what runs on each host.

Every process is started the way production starts it (README, Production): the web
with `manage.py runweb`, the default and control worker and beat on `workers.celery`,
the GPU workers on `gpu_inference.gpu_worker` in a GPU node's environment, vLLM with
the launcher's command and the serving agent beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import redis

from gpu_inference.serving.launcher import ServerSpec, build_command, build_env
from gpu_inference.serving.servers import agent_command, chat_spec
from tests.multihost.hosts import Host, Network
from tests.processes import (
    GPU_APP,
    NO_PLATFORM_PATH,
    PLATFORM_ONLY_VARIABLES,
    ROOT,
    start_worker,
    worker_argv,
    worker_database_url,
    worker_env,
)
from tests.s3 import TEST_ENVIRONMENT, start_moto
from tests.vllm import free_port
from tokenmill.redis_roles import redis_role_url

BUCKET = "tokenmill-multihost"
# Every variable that could point a process at another Redis, S3 server or store than
# the test's: the suite's own are dropped, so each process reads only what is set here.
SERVICE_VARIABLES = (
    "REDIS_URL",
    "REDIS_CACHE_URL",
    "RATELIMIT_REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "ARTIFACT_STORE_URL",
    "ARTIFACT_CACHE_DIR",
)
# Folders of the control plane's disk that a host must not be pointed at (each host
# gets its own under its home).
HOST_FOLDER_VARIABLES = (
    "MODEL_ROOT",
    "TOKENMILL_VAR_DIR",
    "METRICS_DIR",
    "PROMETHEUS_MULTIPROC_DIR",
)
# The reaper notices a silent GPU worker within seconds, not the production minute.
FAST_RECOVERY = {
    "JOB_HEARTBEAT_SECONDS": "1",
    "JOB_HEARTBEAT_TIMEOUT": "4",
    "JOB_REAPER_SECONDS": "1",
    "GATEWAY_HEALTH_SECONDS": "1",
}


def _without(env: dict, names) -> dict:
    return {name: value for name, value in env.items() if name not in names}


@dataclass
class Services:
    """Redis and S3, listening on the bridge only: all that the hosts may reach."""

    redis_url: str  # the first of the four role databases
    s3_endpoint: str
    processes: list[subprocess.Popen]

    @classmethod
    def start(cls, network: Network, folder: Path) -> Services:
        port = free_port()
        services = cls(
            redis_url=f"redis://{network.gateway}:{port}/0", s3_endpoint="", processes=[]
        )
        try:
            services._start(network, folder, port)
        except BaseException:
            services.stop()
            raise
        return services

    def _start(self, network: Network, folder: Path, port: int) -> None:
        with (folder / "redis.log").open("wb") as log:
            # Not protected mode: it listens on the test's private bridge only.
            server = subprocess.Popen(
                [
                    *("redis-server", "--bind", network.gateway, "--port", str(port)),
                    *("--protected-mode", "no", "--save", "", "--appendonly", "no"),
                    *("--dir", str(folder)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(server)
        moto, self.s3_endpoint = start_moto(folder, host=network.gateway)
        self.processes.append(moto)
        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(
                        f"redis-server did not start: {folder / 'redis.log'}"
                    ) from None
                time.sleep(0.1)
        client.close()
        s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, **self.boto_credentials())
        s3.create_bucket(Bucket=BUCKET)

    def boto_credentials(self) -> dict:
        return {
            "aws_access_key_id": TEST_ENVIRONMENT["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": TEST_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"],
            "region_name": TEST_ENVIRONMENT["AWS_DEFAULT_REGION"],
        }

    @property
    def store_url(self) -> str:
        return f"s3://{BUCKET}/artifacts"

    @property
    def broker_url(self) -> str:
        return redis_role_url(self.redis_url, "broker")

    def environment(self) -> dict[str, str]:
        """What every process, on any host, is told about the services."""
        return {
            **TEST_ENVIRONMENT,
            "AWS_ENDPOINT_URL_S3": self.s3_endpoint,
            "REDIS_URL": self.redis_url,
            "ARTIFACT_STORE_URL": self.store_url,
        }

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


class ControlPlane:
    """Web, the default and control worker, and beat, in the root namespace, on the
    test database and the test's Redis and S3."""

    def __init__(self, services: Services, folder: Path):
        self.folder = folder
        self.env = {
            **_without(worker_env(), SERVICE_VARIABLES),
            **services.environment(),
            **FAST_RECOVERY,
            "DATABASE_URL": worker_database_url(),
            "ARTIFACT_CACHE_DIR": str(folder / "control-cache"),
        }
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []

    def start(self) -> ControlPlane:
        self.processes.append(
            start_worker(
                "default,control",
                full_env=self.env,
                node=f"control-{os.getpid()}@%h",
                log=self.folder / "control-worker.log",
            )
        )
        beat = [sys.executable, "-m", "celery", "-A", "workers.celery", "beat", "-l", "WARNING"]
        self._start("beat", [*beat, "-s", str(self.folder / "beat-schedule")])
        web = [sys.executable, "manage.py", "runweb", "--host", "127.0.0.1"]
        self._start("web", [*web, "--port", str(self.port)])
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(f"{self.url}/v1/models", timeout=2)  # any answer, a 401 too
                return self
            except httpx.TransportError:
                if time.monotonic() > deadline or self.processes[-1].poll() is not None:
                    raise RuntimeError(
                        f"the web did not start: {self.folder / 'web.log'}"
                    ) from None
                time.sleep(0.2)

    def _start(self, name: str, argv: list[str]) -> None:
        with (self.folder / f"{name}.log").open("ab") as log:
            self.processes.append(
                subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
            )

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def host_environment(services: Services, host: Host, **extra: str) -> dict[str, str]:
    """A worker or model-server host's environment: no database, no secrets, no Django
    settings, a PYTHONPATH where Django and the platform's packages cannot be imported
    (tests/gpu_node), and the services by their bridge address."""
    inherited = _without(
        os.environ, (*PLATFORM_ONLY_VARIABLES, *SERVICE_VARIABLES, *HOST_FOLDER_VARIABLES)
    )
    return {
        **inherited,
        **services.environment(),
        "PYTHONPATH": f"{NO_PLATFORM_PATH}{os.pathsep}{ROOT}",
        "TOKENMILL_VAR_DIR": str(host.home / "var"),
        "ARTIFACT_CACHE_DIR": str(host.home / "cache"),
        "MODEL_ROOT": str(host.home / "models"),
        **extra,
    }


def start_gpu_worker(host: Host, services: Services, logs: Path) -> subprocess.Popen:
    """`celery -A gpu_inference.gpu_worker worker -Q gpu -c 1`, as a GPU node runs it."""
    env = host_environment(services, host, JOB_HEARTBEAT_SECONDS="1")
    return host.start(
        worker_argv("gpu", app=GPU_APP, node="gpu@%h"), env=env, log=logs / f"{host.name}.log"
    )


@dataclass
class ModelServer:
    spec: ServerSpec
    vllm: subprocess.Popen
    agent: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return self.spec.base_url


def start_model_server(
    host: Host, services: Services, logs: Path, *, api_key: str, port: int = 8000
) -> ModelServer:
    """tiny-chat's vLLM with runtime LoRA, on the host's address, and its serving agent."""
    env = host_environment(services, host, VLLM_API_KEY=api_key)
    spec = chat_spec(
        host.home / "models" / "tiny-chat",
        served_name="tiny-chat",
        port=port,
        max_model_len=256,
        api_key=api_key,
        host=host.address,
    )
    log = logs / f"{host.name}-vllm.log"
    vllm = host.start(build_command(spec), env=build_env(spec, base=env), log=log)
    agent = agent_command(
        python=sys.executable,
        base_model="tiny-chat",
        vllm_url=spec.base_url,
        artifact_store=services.store_url,
        cache_dir=host.home / "adapters",
        broker_url=services.broker_url,
        name=f"{host.name}-agent",
        check=1,
    )
    agent_process = host.start(agent, env=env, log=logs / f"{host.name}-agent.log")
    return ModelServer(spec=spec, vllm=vllm, agent=agent_process, log=log)


# Run on a host: what it can reach, and what it can see of the control plane's disk.
PROBE = """
import json, os, socket, sys
targets, paths = json.loads(sys.argv[1]), json.loads(sys.argv[2])
def reaches(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return True
    except OSError:
        return False
print(json.dumps({
    "reaches": {name: reaches(*target) for name, target in targets.items()},
    "sees": {path: os.path.exists(path) and (os.path.isfile(path) or bool(os.listdir(path)))
             for path in paths},
}))
"""
