"""The GPU side runs a job spec without Django, the platform or a database."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
for name in ("django", "rest_framework", "tokenmill", "tenants", "workers", "celery"):
    sys.modules[name] = None  # any import of them fails
from gpu_inference import protocol
from gpu_inference.artifacts import open_store
from gpu_inference.worker import run_job

root = sys.argv[1]
spec = {
    "job_id": "ftjob-x", "attempt": 1, "base_model": "tiny-chat", "base_model_path": "tiny-chat",
    "training_file": "files/x/normalized.jsonl", "validation_file": None,
    "output_prefix": protocol.attempt_prefix("ftjob-x", 1), "method": "lora",
    "hyperparameters": {"n_epochs": 1, "batch_size": 1, "learning_rate": 1e-3,
                        "lora_r": 4, "lora_alpha": 8},
    "seed": 0, "context_length": None,
}
sent = []
store = open_store(sys.argv[2], cache_dir=root + "/cache")
store.write_bytes("files/x/normalized.jsonl", b"{}\\n")
outcome = run_job(spec, store=store, model_root=root + "/models", work_root=root + "/work",
                  trainer="gpu_inference.training.run_training", send=sent.append,
                  heartbeat_seconds=60)
print(json.dumps({"outcome": outcome, "reports": sent}))
"""


def test_a_gpu_node_runs_a_spec_without_django_or_the_platform(tmp_path, any_store_url):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), any_store_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "failed"
    kinds = [report["kind"] for report in result["reports"]]
    assert kinds == ["started", "outcome"]
    outcome = result["reports"][-1]["payload"]
    assert (outcome["code"], outcome["message"]) == (
        "base_model_not_found",
        "the base model is not installed",
    )
