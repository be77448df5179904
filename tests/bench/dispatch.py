"""Benchmark: how long a fine-tuning job takes from create to `running` with an idle
GPU worker, against a bare Celery round trip (workers.ping) on the same broker.

Runs the real platform pieces in their own processes: a control worker, a GPU
worker and this process as the API side, on a throwaway SQLite database and
filesystem broker (or on DATABASE_URL / REDIS_URL when they are set).

    .venv/bin/python tests/bench/dispatch.py [--jobs 5]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="tokenmill-bench-"))
    os.environ.setdefault("DEBUG", "true")
    os.environ["TOKENMILL_VAR_DIR"] = str(var)
    os.environ.setdefault("MODEL_ROOT", str(ROOT / "var" / "models"))
    os.environ["PYTHONPATH"] = f"{ROOT}{os.pathsep}{ROOT / 'platform'}"
    os.environ.setdefault("JOB_HEARTBEAT_SECONDS", "1")
    sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tokenmill.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    call_command("ensure_demo_model", verbosity=0)

    from tenants import services as tenant_services
    from tenants.models import User
    from tests.processes import start_worker, stop_worker
    from tokenmill.files.models import File
    from tokenmill.files.storage import get_artifact_store, normalized_key
    from tokenmill.finetuning import services
    from tokenmill.finetuning.models import FineTuningJob
    from tokenmill.finetuning.params import JobRequest
    from workers.tasks import ping

    workers = [start_worker("default,control"), start_worker("gpu")]
    try:
        ping.apply_async().get(timeout=60)  # both warm
        round_trips = []
        for _ in range(10):
            started = time.perf_counter()
            ping.apply_async().get(timeout=30, interval=0.005)
            round_trips.append(time.perf_counter() - started)

        owner = User.objects.create_user("bench@example.com")
        tenant = tenant_services.organization_create(name="Bench", owner=owner)
        body = "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"q{i}"},
                        {"role": "assistant", "content": f"a{i}"},
                    ]
                }
            )
            + "\n"
            for i in range(20)
        ).encode()
        latencies = []
        for _ in range(args.jobs):
            file = File(
                tenant=tenant,
                purpose="fine-tune",
                filename="b.jsonl",
                bytes=len(body),
                sha256="0" * 64,
            )
            get_artifact_store().write_bytes(normalized_key(file.public_id), body)
            file.storage_key = file.normalized_key = normalized_key(file.public_id)
            file.status = "processed"
            file.save()
            started = time.perf_counter()
            job = services.job_create(
                tenant=tenant,
                request=JobRequest(
                    model="tiny-chat", training_file=file.public_id, hyperparameters={"n_epochs": 1}
                ),
            )
            while FineTuningJob.unscoped.filter(
                pk=job.pk, status__in=["validating_files", "queued"]
            ).exists():
                time.sleep(0.005)
            latencies.append(time.perf_counter() - started)
            while not FineTuningJob.unscoped.get(pk=job.pk).released_at:  # let the worker go idle
                time.sleep(0.05)
    finally:
        for process in workers:
            stop_worker(process)

    ping_ms = statistics.median(round_trips) * 1000
    dispatch_ms = statistics.median(latencies) * 1000
    print(f"broker round trip (workers.ping), median of {len(round_trips)}: {ping_ms:.0f} ms")
    print(
        f"create -> running with an idle GPU worker, median of {len(latencies)}: {dispatch_ms:.0f} ms "
        f"(max {max(latencies) * 1000:.0f} ms)"
    )
    print(
        f"dispatch latency / broker round trip: {dispatch_ms / ping_ms:.1f}x; target: under 1000 ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
