"""Benchmark: what the gateway adds, against calling the same backend directly.

1. Added latency (p50, p99) through the gateway against the fast fake OpenAI backend
   called directly, at concurrency 1, 32 and 256, streamed (16 chunks) and not; and the
   gateway's own CPU time per request (its process's CPU over the run / requests).
2. vLLM tokens per second at concurrency 8 and 32 against 1, through the gateway and
   directly (skipped with --no-vllm, or when the vLLM environment is missing).

Every figure is a ratio or a difference against a baseline measured in the same run.
The gateway runs as production runs it: `uvicorn tokenmill.asgi:application`, one process.

    .venv/bin/python tests/bench/serving.py [--requests 300] [--no-vllm]
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
QUESTION = [{"role": "user", "content": "What color is the sky?"}]


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def setup_platform() -> str:
    var = Path(tempfile.mkdtemp(prefix="tokenmill-bench-serving-"))
    os.environ.setdefault("DEBUG", "true")
    os.environ["TOKENMILL_VAR_DIR"] = str(var)
    os.environ.setdefault("MODEL_ROOT", str(ROOT / "var" / "models"))
    os.environ["PYTHONPATH"] = f"{ROOT}{os.pathsep}{ROOT / 'platform'}"
    os.environ["LOG_LEVEL"] = "WARNING"
    sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenmill.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    from tenants import services as tenant_services
    from tenants.models import Membership, User

    owner = User.objects.create_user("bench@example.com")
    tenant = tenant_services.organization_create(name="Bench", owner=owner)
    actor = Membership.unscoped.get(tenant=tenant, user=owner)
    _, key = tenant_services.api_key_create(tenant=tenant, actor=actor, name="bench")
    return key


def start_gateway(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tokenmill.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--lifespan",
            "on",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
    )
    wait_listening(f"http://127.0.0.1:{port}/v1/models")
    return process


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


ERRORS: list[str] = []


async def load(url: str, key: str, body: dict, *, concurrency: int, requests: int) -> list[float]:
    """Latency of each request (to the last byte), `concurrency` at a time.

    The load comes from aiohttp: httpx's pool costs the client more than the gateway
    costs the server, and would measure itself.
    """
    import aiohttp

    latencies: list[float] = []
    headers = {"authorization": f"Bearer {key}"} if key else {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=300)
    payload = json.dumps(body).encode()
    headers["content-type"] = "application/json"
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        queue = iter(range(requests))

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                try:
                    async with client.post(url, data=payload, headers=headers) as response:
                        raw = await response.read()
                        status = response.status
                except aiohttp.ClientError as error:
                    ERRORS.append(f"{url}: {type(error).__name__}")
                    continue
                if status != 200:
                    ERRORS.append(f"{url}: HTTP {status}: {raw[:200]!r}")
                    continue
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def overhead(
    gateway_url: str, backend_url: str, key: str, gateway: psutil.Process, requests: int
) -> None:
    print("gateway overhead against the fake backend called directly (latency to the last byte)")
    print(
        f"{'mode':<9}{'conc':>5}{'direct p50':>12}{'p99':>9}{'gateway p50':>13}{'p99':>9}"
        f"{'added p50':>11}{'p99':>9}{'CPU/req':>9}"
    )
    for stream in (False, True):
        body = {"model": "tiny-chat", "messages": QUESTION, "max_tokens": 16, "stream": stream}
        for concurrency in (1, 32, 256):
            count = max(requests, concurrency * 2)
            # Warm both paths (connections, the gateway's caches) before measuring.
            asyncio.run(load(gateway_url, key, body, concurrency=min(concurrency, 32), requests=64))
            direct = asyncio.run(
                load(backend_url, "", body, concurrency=concurrency, requests=count)
            )
            before = cpu_seconds(gateway)
            through = asyncio.run(
                load(gateway_url, key, body, concurrency=concurrency, requests=count)
            )
            cpu_ms = (cpu_seconds(gateway) - before) / count * 1000
            if ERRORS:
                print(f"  {len(ERRORS)} failed requests, e.g. {ERRORS[0]}")
                ERRORS.clear()
            ms = lambda seconds: seconds * 1000  # noqa: E731
            d50, d99 = ms(percentile(direct, 0.5)), ms(percentile(direct, 0.99))
            g50, g99 = ms(percentile(through, 0.5)), ms(percentile(through, 0.99))
            print(
                f"{'stream' if stream else 'whole':<9}{concurrency:>5}{d50:>10.2f}ms{d99:>7.2f}ms"
                f"{g50:>11.2f}ms{g99:>7.2f}ms{g50 - d50:>9.2f}ms{g99 - d99:>7.2f}ms{cpu_ms:>7.2f}ms",
                flush=True,
            )


async def tokens_per_second(url: str, key: str, model: str, concurrency: int) -> float:
    body = {
        "model": model,
        "messages": QUESTION,
        "max_tokens": 32,
        "ignore_eos": True,
        "temperature": 0,
    }
    headers = {"authorization": f"Bearer {key}"} if key else {}
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=300, headers=headers) as client:

        async def one() -> int:
            async with gate:  # never more than `concurrency` in flight
                response = await client.post(url, json=body)
            response.raise_for_status()
            return response.json()["usage"]["completion_tokens"]

        await asyncio.gather(*(one() for _ in range(concurrency)))  # warm
        started = time.perf_counter()
        counts = await asyncio.gather(*(one() for _ in range(max(concurrency * 3, 12))))
        return sum(counts) / (time.perf_counter() - started)


def vllm_throughput(gateway_url: str, key: str) -> None:
    from gpu_inference.serving.servers import chat_spec, supervise
    from gpu_inference.serving.supervisor import State
    from tokenmill.catalog.models import Replica
    from tokenmill.catalog.services import replica_register

    spec = chat_spec(
        Path(os.environ["MODEL_ROOT"]) / "tiny-chat",
        served_name="tiny-chat",
        port=free_port(),
        max_model_len=256,
    )
    log_dir = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    print("starting vLLM (tiny-chat) …", flush=True)
    supervisor = supervise("bench-vllm", spec, log_dir=log_dir)
    try:
        status = supervisor.wait_for((State.READY, State.FAILED), 900)
        if status.state != State.READY:
            print(f"vLLM unavailable: {status.reason}; skipping the tokens/s part")
            return
        Replica.objects.all().delete()
        replica_register(model_id="tiny-chat", url=spec.base_url, api_key=spec.api_key or "")
        time.sleep(1.5)  # the gateway's memo of the routes expires
        print("vLLM tokens/s (32 new tokens per request, ignore_eos), ratio against concurrency 1")
        paths = {
            "direct": (spec.base_url + "/v1/chat/completions", spec.api_key or ""),
            "gateway": (gateway_url, key),
        }
        rates: dict[str, dict[int, float]] = {"direct": {}, "gateway": {}}
        for concurrency in (1, 8, 32):
            # Both paths at one concurrency in turn, three times, so neither gets a
            # warmer or quieter machine; the median of the three each.
            runs: dict[str, list[float]] = {"direct": [], "gateway": []}
            for label in ("direct", "gateway") * 3:
                url, auth = paths[label]
                runs[label].append(
                    asyncio.run(tokens_per_second(url, auth, "tiny-chat", concurrency))
                )
            for label, measured in runs.items():
                rates[label][concurrency] = statistics.median(measured)
        for label, rate in rates.items():
            print(
                f"{label:<8} c=1 {rate[1]:7.0f} tok/s   c=8 {rate[8]:7.0f} ({rate[8] / rate[1]:.1f}x)"
                f"   c=32 {rate[32]:7.0f} ({rate[32] / rate[1]:.1f}x)",
                flush=True,
            )
        print(
            "gateway / direct: "
            + "   ".join(
                f"c={c} {rates['gateway'][c] / rates['direct'][c]:.2f}" for c in (1, 8, 32)
            ),
            flush=True,
        )
    finally:
        supervisor.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--no-vllm", action="store_true")
    parser.add_argument("--only-vllm", action="store_true", help="skip the overhead part")
    args = parser.parse_args()
    key = setup_platform()
    from tokenmill.catalog.services import replica_register

    backend_port, gateway_port = free_port(), free_port()
    backend = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/gateway/fake_backend.py"), str(backend_port), "16"],
        cwd=ROOT,
    )
    backend_url = f"http://127.0.0.1:{backend_port}"
    gateway = None
    try:
        wait_listening(backend_url + "/health")
        replica_register(model_id="tiny-chat", url=backend_url, max_concurrent_requests=1024)
        gateway = start_gateway(gateway_port)
        gateway_url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
        if not args.only_vllm:
            overhead(
                gateway_url,
                backend_url + "/v1/chat/completions",
                key,
                psutil.Process(gateway.pid),
                args.requests,
            )
        vllm_ready = (ROOT / ".venv-vllm" / "bin" / "python").exists()
        if args.no_vllm or not vllm_ready:
            print(
                "vLLM tokens/s: skipped" + ("" if args.no_vllm else " (no .venv-vllm: make vllm)")
            )
        else:
            vllm_throughput(gateway_url, key)
    finally:
        for process in (gateway, backend):
            if process is not None:
                process.terminate()
                process.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
