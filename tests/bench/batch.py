"""Benchmark: what a large batch does to the latency of live requests on the same vLLM.

One real vLLM server (tiny-chat), the gateway (uvicorn, as production runs it), the
platform's default worker (validation) and a batch worker, on a throwaway database
and broker. A probe sends live chat requests one after another and times each; it runs
in three phases, every figure a ratio against the first, measured in the same run:

1. idle: the probe alone;
2. batch: while a batch of --lines requests runs through the Batch API (the batch
   worker sends BATCH_CONCURRENCY at a time, at a lower vLLM priority than live calls);
3. the same load as live traffic: the same requests sent through the gateway at the
   same concurrency, as a client without the Batch API would send them.

    .venv/bin/python tests/bench/batch.py [--lines 300] [--probes 40]
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT)]

from tests.bench.serving import (  # noqa: E402
    free_port,
    percentile,
    setup_platform,
    start_gateway,
    wait_listening,
)

PROBE = {
    "model": "tiny-chat",
    "messages": [{"role": "user", "content": "What color is the sky?"}],
    "max_tokens": 16,
    "temperature": 0,
}


def load_body(index: int) -> dict:
    return {
        "model": "tiny-chat",
        "messages": [{"role": "user", "content": f"Tell me a story about ship number {index}."}],
        "max_tokens": 48,
        "ignore_eos": True,
        "temperature": 0,
    }


def setup() -> str:
    """The serving benchmark's throwaway platform, with small batch chunks: the batch's
    counts (written per chunk) show that it runs while probed."""
    os.environ.setdefault("BATCH_CHUNK_LINES", "8")
    return setup_platform()


def probe(url: str, key: str, count: int) -> list[float]:
    """`count` live requests one after another: each one's latency, in seconds."""
    latencies = []
    with httpx.Client(timeout=300, headers={"authorization": f"Bearer {key}"}) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = client.post(url, json=PROBE)
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


async def live_load(url: str, key: str, lines: int, concurrency: int, stop: threading.Event):
    """The batch's requests as live traffic, `concurrency` at a time, until done or stopped."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=300, headers={"authorization": f"Bearer {key}"}) as client:

        async def one(index: int) -> None:
            async with gate:
                if stop.is_set():
                    return
                (await client.post(url, json=load_body(index))).raise_for_status()

        await asyncio.gather(*(one(index) for index in range(lines)))


def summary(label: str, latencies: list[float], idle: list[float] | None) -> str:
    p50, p95 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.95) * 1000
    text = f"{label:<28}p50 {p50:7.1f} ms   p95 {p95:7.1f} ms"
    if idle:
        i50, i95 = percentile(idle, 0.5) * 1000, percentile(idle, 0.95) * 1000
        text += f"   ({p50 / i50:.2f}x, {p95 / i95:.2f}x idle)"
    return text


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--probes", type=int, default=40)
    args = parser.parse_args()
    if not (ROOT / ".venv-vllm" / "bin" / "python").exists():
        print("skipped: no .venv-vllm (make vllm)")
        return 0
    key = setup()
    from django.conf import settings

    from gpu_inference.serving.servers import chat_spec, supervise
    from gpu_inference.serving.supervisor import State
    from tests.processes import start_worker, stop_worker
    from tokenmill.catalog.services import replica_register

    spec = chat_spec(
        Path(os.environ["MODEL_ROOT"]) / "tiny-chat",
        served_name="tiny-chat",
        port=free_port(),
        max_model_len=256,
    )
    print("starting vLLM (tiny-chat) …", flush=True)
    supervisor = supervise("bench-vllm", spec, log_dir=Path(tempfile.mkdtemp(prefix="bench-vllm-")))
    gateway = None
    workers = []
    try:
        status = supervisor.wait_for((State.READY, State.FAILED), 900)
        if status.state != State.READY:
            print(f"vLLM unavailable: {status.reason}")
            return 1
        replica_register(model_id="tiny-chat", url=spec.base_url, api_key=spec.api_key or "")
        port = free_port()
        gateway = start_gateway(port)
        base = f"http://127.0.0.1:{port}"
        chat_url = base + "/v1/chat/completions"
        wait_listening(base + "/healthz")
        workers = [start_worker("default,control"), start_worker("batch")]
        concurrency = settings.BATCH_CONCURRENCY

        probe(chat_url, key, 5)  # warm the gateway's caches and vLLM
        idle = probe(chat_url, key, args.probes)

        import openai

        client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
        lines = "".join(
            json.dumps(
                {
                    "custom_id": f"line-{index}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": load_body(index),
                }
            )
            + "\n"
            for index in range(args.lines)
        )
        upload = client.files.create(file=("load.jsonl", lines.encode()), purpose="batch")
        batch = client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        # Probe once the batch worker is sending: its first chunk has finished.
        while (current := client.batches.retrieve(batch.id)).request_counts.completed == 0:
            if current.status not in ("validating", "in_progress"):
                print(f"the batch ended {current.status} before any line finished: {current}")
                return 1
            time.sleep(0.2)
        before = current.request_counts.completed + current.request_counts.failed
        started = time.perf_counter()
        during_batch = probe(chat_url, key, args.probes)
        batch = client.batches.retrieve(batch.id)
        done = batch.request_counts.completed + batch.request_counts.failed - before
        if batch.status != "in_progress":
            print(f"note: the batch ended ({batch.status}) before the probe did: use more --lines")
        client.batches.cancel(batch.id)
        batch_rate = done / (time.perf_counter() - started)

        stop = threading.Event()
        loader = threading.Thread(
            target=lambda: asyncio.run(live_load(chat_url, key, args.lines, concurrency, stop))
        )
        loader.start()
        time.sleep(2)  # the load reaches its concurrency
        during_live = probe(chat_url, key, args.probes)
        stop.set()
        loader.join()

        print(f"live probe: {args.probes} chat requests of 16 tokens, one after another")
        print(f"load: {concurrency} requests of 48 tokens at a time (BATCH_CONCURRENCY)")
        print(summary("idle", idle, None))
        print(summary("during a batch", during_batch, idle))
        print(summary("during the same live load", during_live, idle))
        print(f"batch lines finished while probing: {done} ({batch_rate:.1f}/s)")
        print(
            "median of the probe, batch against the same live load: "
            f"{statistics.median(during_batch) / statistics.median(during_live):.2f}"
        )
    finally:
        for worker in workers:
            stop_worker(worker)
        if gateway is not None:
            gateway.terminate()
            gateway.wait(timeout=20)
        supervisor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
