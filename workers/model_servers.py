"""The model servers `runplatform` starts: vLLM per active base model, plus a serving agent
beside each chat server, registered as the catalog's replicas.

Kept apart from runplatform's own children so it reads on its own: `start()` launches
everything in the background (vLLM takes a minute or more to be ready) and prints each
server's readiness, or why it cannot serve; `stop()` takes it all down.
"""

import atexit
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from gpu_inference.serving.launcher import LaunchError
from gpu_inference.serving.servers import (
    agent_command,
    chat_spec,
    embedding_spec,
    model_folder,
    supervise,
)
from gpu_inference.serving.supervisor import State, Status, Supervisor
from tokenmill.catalog.models import BaseModel
from tokenmill.catalog.services import replica_register
from tokenmill.finetuning.adapters import adapters_publish


class ModelServers:
    def __init__(self, *, write, root: Path, var: Path, host: str = "127.0.0.1") -> None:
        self.write = write  # a function that prints one line to the operator
        self.root = root
        self.var = var
        self.host = host
        # A fresh key each start: only the gateway (through the replica rows) and the agents know it.
        self.api_key = f"vllm-{secrets.token_urlsafe(24)}"
        self.supervisors: list[Supervisor] = []
        self.agents: dict[str, tuple[list[str], dict, subprocess.Popen]] = {}

    def start(self) -> None:
        atexit.register(self.stop)  # whatever happens to runplatform, no server outlives it
        models = BaseModel.objects.filter(status=BaseModel.Status.ACTIVE).order_by(
            "kind", "model_id"
        )
        for port, base_model in enumerate(models, start=settings.MODEL_SERVER_PORT):
            try:
                self._start_server(base_model, port)
            except LaunchError as error:
                self.write(f"Inference with {base_model.model_id} is unavailable: {error}")

    def _start_server(self, base_model: BaseModel, port: int) -> None:
        folder = model_folder(base_model.path, settings.MODEL_ROOT)
        options = {
            "port": port,
            "host": self.host,
            "api_key": self.api_key,
            "device": settings.MODEL_SERVER_DEVICE,
            "kv_cache_gib": settings.MODEL_SERVER_KV_CACHE_GIB,
        }
        if base_model.kind == BaseModel.Kind.EMBEDDING:
            spec = embedding_spec(
                model=folder,
                served_name=base_model.model_id,
                max_model_len=base_model.context_length,
                **options,
            )
        else:
            spec = chat_spec(
                folder,
                served_name=base_model.model_id,
                max_model_len=base_model.context_length,
                max_loras=settings.MODEL_SERVER_MAX_LORAS,
                max_lora_rank=settings.MODEL_SERVER_MAX_LORA_RANK,
                **options,
            )
        name = f"vllm-{base_model.model_id}"
        supervisor = supervise(
            name,
            spec,
            log_dir=self.var / "log",
            state_dir=self.var / "serving",
            on_change=lambda status, url=spec.base_url: self._report(status, url),
        )
        self.supervisors.append(supervisor)
        if supervisor.status.state == State.FAILED:  # cannot even start; _report said why
            return
        replica_register(model_id=base_model.model_id, url=spec.base_url, api_key=self.api_key)
        self.write(
            f"Starting vLLM for {base_model.model_id} on {spec.base_url} (log: {supervisor.log_path})"
        )
        if spec.enable_lora:
            adapters_publish(base_model=base_model)  # the agent's first read is the current state
            self._start_agent(base_model.model_id, spec.base_url)

    def _start_agent(self, model_id: str, url: str) -> None:
        filesystem = settings.CELERY_BROKER_URL.startswith("filesystem://")
        command = agent_command(
            python=sys.executable,
            base_model=model_id,
            vllm_url=url,
            artifact_store=settings.ARTIFACT_STORE_URL,
            cache_dir=self.var / "serving" / "adapters" / model_id,
            broker_url=settings.CELERY_BROKER_URL,
            broker_folder=settings.CELERY_BROKER_FOLDER if filesystem else None,
            name=f"{os.uname().nodename}-{model_id}",
        )
        env = {**os.environ, "PYTHONPATH": str(self.root), "VLLM_API_KEY": self.api_key}
        self.agents[model_id] = (command, env, self._spawn(command, env))

    def _spawn(self, command: list[str], env: dict) -> subprocess.Popen:
        return subprocess.Popen(command, cwd=self.root, env=env, start_new_session=True)  # noqa: S603

    def check(self) -> None:
        """Called by runplatform's loop: an agent that died is started again."""
        for model_id, (command, env, process) in list(self.agents.items()):
            if process.poll() is not None:
                self.write(
                    f"The serving agent of {model_id} exited ({process.returncode}); restarting it."
                )
                self.agents[model_id] = (command, env, self._spawn(command, env))

    def _report(self, status: Status, url: str) -> None:
        model = status.name.removeprefix("vllm-")
        if status.state == State.READY:
            self.write(f"Model {model} is ready on {url} after {status.ready_after_seconds:.0f}s.")
        elif status.state == State.FAILED:
            self.write(f"Inference with {model} is unavailable: {status.reason}")
        elif status.state == State.RESTARTING:
            self.write(f"vLLM for {model} {status.reason}")

    def stop(self) -> None:
        atexit.unregister(self.stop)
        for _, _, process in self.agents.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for supervisor in self.supervisors:
            supervisor.on_change = None  # stopping is not news
            supervisor.stop()
        for _, _, process in self.agents.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
