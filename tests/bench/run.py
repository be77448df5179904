"""`make bench`: every benchmark, each reported as a ratio against a baseline
measured in the same run (never a timed test).

- training throughput: the platform's trainer against a bare PEFT loop;
- dispatch latency: create -> running with an idle GPU worker, against a bare
  Celery round trip on the same broker;
- serving: the gateway's added latency and CPU per request against the same fake
  backend called directly, and vLLM's tokens/s at concurrency 8 and 32 against 1,
  through the gateway and directly;
- admission and metering: the gateway's CPU per request with them on (Redis, and the
  embedded default) against off, and the events per second the ledger task absorbs;
- batches: live requests' latency while a batch runs on the same vLLM, against the
  same requests on an idle server and during the same load sent as live traffic.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = [
    ("training throughput", [sys.executable, "tests/bench/training.py", "throughput"]),
    ("fine-tuning dispatch latency", [sys.executable, "tests/bench/dispatch.py"]),
    ("serving", [sys.executable, "tests/bench/serving.py"]),
    ("admission and metering", [sys.executable, "tests/bench/metering.py"]),
    ("live latency during a batch", [sys.executable, "tests/bench/batch.py"]),
]


def main() -> int:
    failed = 0
    for title, command in BENCHMARKS:
        print(f"== {title}: {' '.join(command[1:])}", flush=True)
        failed += subprocess.run(command, cwd=ROOT, check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
