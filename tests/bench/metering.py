"""Benchmark: what admission and metering cost the gateway, and what the ledger absorbs.

1. The gateway's CPU per request (its process's CPU over a run / requests) against the
   fast fake backend, with admission and metering on (on Redis, and on the embedded
   default for information) against off (tests/bench/unmetered.py: the same app with
   the admission seam a no-op), in the same run. Three rounds, the configurations in
   turn within each, so none gets a quieter machine; the median of the rounds.
   The key and the organization have limits (checked on every request) too high to hit.
2. The ledger task: XADD N events to the metering stream, then time
   `metering.aggregate`'s work (ledger.aggregate) until the stream is drained.

Redis comes from RATELIMIT_REDIS_URL or REDIS_URL (its metering database); without
either, the Redis parts are skipped and say so. The platform database is a fresh
SQLite file unless DATABASE_URL names another.

    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python tests/bench/metering.py
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path[:0] = [str(Path(__file__).resolve().parents[2])]

from tests.bench.serving import (  # noqa: E402
    ERRORS,
    QUESTION,
    ROOT,
    cpu_seconds,
    free_port,
    load,
    setup_platform,
    wait_listening,
)

HIGH = str(10**9)  # limits checked on every request, never reached


def start(app: str, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)),
            *("--log-level", "warning", "--no-access-log", "--lifespan", "on"),
        ],
        cwd=ROOT,
        env=env,
    )
    wait_listening(f"http://127.0.0.1:{port}/v1/models")
    return process, f"http://127.0.0.1:{port}/v1/chat/completions"


def gateways(metering_redis: str) -> dict[str, tuple[subprocess.Popen, str]]:
    base = {**os.environ, "ORG_REQUESTS_PER_MINUTE": HIGH, "ORG_TOKENS_PER_MINUTE": HIGH}
    # Without a metering Redis of its own and without REDIS_URL: the database fallback.
    embedded = {k: v for k, v in base.items() if k not in ("REDIS_URL", "RATELIMIT_REDIS_URL")}
    if os.environ.get("REDIS_URL"):
        from django.conf import settings

        embedded["REDIS_CACHE_URL"] = settings.REDIS_CACHE_URL
    found = {"off": start("tests.bench.unmetered:application", base)}
    if metering_redis:
        found["on, Redis"] = start(
            "tokenmill.asgi:application", {**base, "RATELIMIT_REDIS_URL": metering_redis}
        )
    found["on, embedded"] = start("tokenmill.asgi:application", embedded)
    return found


def cpu_per_request(gateway, url: str, key: str, body: dict, concurrency: int, count: int):
    asyncio.run(load(url, key, body, concurrency=min(concurrency, 32), requests=64))  # warm
    before = cpu_seconds(gateway)
    asyncio.run(load(url, key, body, concurrency=concurrency, requests=count))
    if ERRORS:
        print(f"  {len(ERRORS)} failed requests, e.g. {ERRORS[0]}")
        ERRORS.clear()
    return (cpu_seconds(gateway) - before) / count * 1000


def admission_cost(key: str, metering_redis: str, count: int, rounds: int) -> None:
    started = gateways(metering_redis)
    try:
        names = list(started)
        print(f"gateway CPU per request, admission and metering on against off ({rounds} rounds)")
        print(f"{'mode':<8}{'conc':>5}" + "".join(f"{name:>15}" for name in names) + "   added")
        for stream in (False, True):
            body = {"model": "tiny-chat", "messages": QUESTION, "max_tokens": 16, "stream": stream}
            for concurrency in (1, 32):
                runs: dict[str, list[float]] = {name: [] for name in names}
                for _ in range(rounds):
                    for name in names:
                        process, url = started[name]
                        runs[name].append(
                            cpu_per_request(
                                psutil.Process(process.pid), url, key, body, concurrency, count
                            )
                        )
                medians = {name: statistics.median(values) for name, values in runs.items()}
                added = "   ".join(
                    f"{name}: {medians[name] - medians['off']:+.2f} ms"
                    for name in names
                    if name != "off"
                )
                print(
                    f"{'stream' if stream else 'whole':<8}{concurrency:>5}"
                    + "".join(f"{medians[name]:>12.2f} ms" for name in names)
                    + f"   {added}",
                    flush=True,
                )
    finally:
        for process, _ in started.values():
            process.terminate()
            process.wait(timeout=20)


def ledger_rate(metering_redis: str, events_count: int) -> None:
    from django.conf import settings

    from tenants.models import Organization
    from tokenmill.metering import events, ledger, redis_client

    settings.RATELIMIT_REDIS_URL = metering_redis
    client = redis_client.client()
    stream = settings.METERING_STREAM
    client.delete(stream)
    tenant = Organization.objects.get(name="Bench")
    pipe = client.pipeline(transaction=False)
    for n in range(events_count):
        event = events.Event(
            event_id=f"req_bench_{n}",
            tenant_id=tenant.pk,
            key_public_id=f"key_bench_{n % 4}",
            model="tiny-chat",
            fine_tuned_model="",
            kind="chat",
            prompt_tokens=7,
            completion_tokens=16,
            latency_ms=3,
            status="completed",
            at=events.now_iso(),
        )
        pipe.xadd(stream, {"event": event.encoded()})
        if n % 1000 == 999:
            pipe.execute()
    pipe.execute()
    began, cpu = time.perf_counter(), time.process_time()
    done = ledger.aggregate(consumer="bench")
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    left = client.xlen(stream)
    client.delete(stream)
    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(
        f"ledger: {done.events:,} events ({done.counted:,} new) in {seconds:.2f} s = "
        f"{done.events / seconds:,.0f} events/s on Redis + {database} "
        f"(aim >= 10,000/s: {done.events / seconds / 10_000:.2f}x); the task's own CPU "
        f"{cpu:.2f} s = {done.events / cpu:,.0f} events per CPU-second; {left} left in the stream",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    key = setup_platform()
    from django.conf import settings

    from tenants.models import ApiKey
    from tokenmill.catalog.services import replica_register

    metering_redis = settings.RATELIMIT_REDIS_URL
    ApiKey.unscoped.update(requests_per_minute=int(HIGH), tokens_per_minute=int(HIGH))
    backend_port = free_port()
    backend = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/gateway/fake_backend.py"), str(backend_port), "16"],
        cwd=ROOT,
    )
    try:
        backend_url = f"http://127.0.0.1:{backend_port}"
        wait_listening(backend_url + "/health")
        replica_register(model_id="tiny-chat", url=backend_url, max_concurrent_requests=1024)
        admission_cost(key, metering_redis, args.requests, args.rounds)
    finally:
        backend.terminate()
        backend.wait(timeout=20)
    if metering_redis:
        ledger_rate(metering_redis, args.events)
    else:
        print("ledger events/s and admission on Redis: skipped (no REDIS_URL)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
