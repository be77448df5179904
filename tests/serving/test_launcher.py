"""The vLLM command line and environment built from a server spec."""

import pytest

from gpu_inference.serving.launcher import ServerSpec, build_command, build_env


def chat(**options) -> ServerSpec:
    return ServerSpec(
        model="/models/tiny-chat",
        served_name="tiny-chat",
        port=8101,
        max_model_len=256,
        enable_lora=True,
        dtype="float32",
        **options,
    )


def test_chat_server_command_on_cpu():
    command = build_command(chat(api_key="secret", max_loras=8), python="/venv/bin/python")
    assert command == [
        "/venv/bin/python",
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        "/models/tiny-chat",
        "--served-model-name",
        "tiny-chat",
        "--host",
        "127.0.0.1",
        "--port",
        "8101",
        "--runner",
        "generate",
        "--dtype",
        "float32",
        "--scheduling-policy",
        "priority",
        "--max-model-len",
        "256",
        "--enable-lora",
        "--max-loras",
        "8",
        "--max-lora-rank",
        "16",
    ]
    assert "secret" not in " ".join(command)  # ps would show it


def test_cpu_environment_is_offline_with_runtime_lora_and_a_kv_cache():
    env = build_env(chat(api_key="secret", kv_cache_gib=2), base={"PYTHONPATH": "platform"})
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    assert env["VLLM_API_KEY"] == "secret"
    assert "PYTHONPATH" not in env  # the platform's packages must not shadow vLLM's


def test_cuda_server_sizes_its_cache_by_gpu_memory():
    spec = chat(device="cuda", gpu_memory_utilization=0.8)
    assert build_command(spec, python="py")[-2:] == ["--gpu-memory-utilization", "0.8"]
    env = build_env(spec, base={"VLLM_API_KEY": "stale"})
    assert "VLLM_CPU_KVCACHE_SPACE" not in env
    assert "VLLM_API_KEY" not in env


def test_embedding_server_uses_the_pooling_runner_without_lora():
    spec = ServerSpec(model="/m", served_name="all-MiniLM-L6-v2", port=8102, runner="pooling")
    command = build_command(spec, python="py")
    assert command[command.index("--runner") + 1] == "pooling"
    assert "--enable-lora" not in command
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in build_env(spec, base={})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device": "tpu"}, "device must be one of cpu, cuda, got 'tpu'"),
        ({"runner": "draft"}, "runner must be one of generate, pooling, got 'draft'"),
        ({"port": 0}, "port must be between 1 and 65535, got 0"),
        ({"kv_cache_gib": 0}, "kv_cache_gib must be at least 1, got 0"),
    ],
)
def test_bad_specs_are_refused_with_a_message(options, message):
    with pytest.raises(ValueError) as refused:
        ServerSpec(model="/m", served_name="m", **{"port": 8000, **options})
    assert str(refused.value) == message
