"""The GPU nodes' Celery app agrees with the platform's on everything they share."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Exchange, Queue

from gpu_inference import gpu_worker, protocol
from tokenmill import redis_roles
from workers.celery import app as platform_app

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_gpu_app_needs_no_django_or_platform_code(tmp_path):
    script = (
        "import sys\n"
        "for name in ('django', 'rest_framework', 'tokenmill', 'tenants', 'workers'):\n"
        "    sys.modules[name] = None\n"
        "import json\n"
        "from gpu_inference.gpu_worker import app\n"
        "train = app.tasks['finetuning.train']\n"
        "print(json.dumps({'tasks': sorted(n for n in app.tasks if not n.startswith('celery.')),\n"
        "    'acks_late': train.acks_late, 'reject_on_worker_lost': train.reject_on_worker_lost,\n"
        "    'prefetch': app.conf.worker_prefetch_multiplier}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TOKENMILL_VAR_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # In a GPU node's process (no platform tasks beside it): the train task and the probe.
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "tasks": sorted([protocol.TASK_TRAIN, gpu_worker.PING_TASK]),
        "acks_late": True,
        "reject_on_worker_lost": False,
        "prefetch": 1,
    }


def test_the_gpu_app_uses_the_platforms_broker_results_and_queues():
    gpu, platform = gpu_worker.app.conf, platform_app.conf
    assert gpu.broker_url == platform.broker_url
    assert gpu.result_backend == platform.result_backend
    assert gpu.broker_transport_options == platform.broker_transport_options
    declared = {(q.name, q.exchange.name, q.routing_key) for q in gpu.task_queues}
    assert {(q.name, q.exchange.name, q.routing_key) for q in platform.task_queues} <= declared
    assert gpu.task_routes[protocol.TASK_REPORT] == platform.task_routes[protocol.TASK_REPORT]
    assert gpu.task_routes[protocol.TASK_TRAIN] == platform.task_routes[protocol.TASK_TRAIN]


@pytest.mark.parametrize(
    ("base", "role", "expected"),
    [
        ("redis://cache:6379/0", "broker", "redis://cache:6379/1"),
        ("redis://cache:6379/8", "results", "redis://cache:6379/10"),
        ("rediss://:pw@h:6380/12", "ratelimit", "rediss://:pw@h:6380/15"),
        ("redis://h:6379", "broker", "redis://h:6379/1"),
    ],
)
def test_redis_role_databases_are_derived_as_the_platform_derives_them(base, role, expected):
    assert gpu_worker.redis_role_url(base, role) == expected
    assert redis_roles.redis_role_url(base, role) == expected


def test_a_redis_url_beyond_the_last_block_is_refused_naming_the_variable():
    with pytest.raises(gpu_worker.GpuWorkerConfigError, match="REDIS_URL must name a database"):
        gpu_worker.redis_role_url("redis://h:6379/13", "broker")


def test_the_broker_comes_from_redis_urls_broker_database(monkeypatch):
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://r:6379/4")
    config = gpu_worker.GpuSettings()
    assert (config.broker_url, config.result_backend) == ("redis://r:6379/5", "redis://r:6379/6")


def test_a_bad_setting_names_its_variable(monkeypatch):
    monkeypatch.setenv("JOB_HEARTBEAT_SECONDS", "often")
    with pytest.raises(gpu_worker.GpuWorkerConfigError, match="JOB_HEARTBEAT_SECONDS must be"):
        gpu_worker.GpuSettings()


def test_reports_are_sent_by_name_to_the_control_queue(monkeypatch):
    sent = []
    monkeypatch.setattr(
        gpu_worker.app, "send_task", lambda name, **options: sent.append((name, options))
    )
    report = {"job_id": "ftjob-x", "attempt": 1, "seq": 1, "kind": "heartbeat", "payload": {}}
    gpu_worker.send_report(report)
    assert sent == [
        (
            protocol.TASK_REPORT,
            {
                "args": (report,),
                "queue": protocol.CONTROL_QUEUE,
                "routing_key": protocol.CONTROL_QUEUE,
            },
        )
    ]


def test_the_probe_queue_is_named_as_the_platform_names_it():
    from workers.probes import probe_queue

    node = "gpu@node-1.example"
    ours, theirs = gpu_worker.probe_queue(node), probe_queue(node)
    assert isinstance(ours, Queue) and isinstance(ours.exchange, Exchange)
    assert (ours.name, ours.exchange.name, ours.routing_key) == (
        theirs.name,
        theirs.exchange.name,
        theirs.routing_key,
    )


def test_a_gpu_worker_never_sets_up_django_even_with_its_settings_in_the_environment(tmp_path):
    # runplatform's children inherit DJANGO_SETTINGS_MODULE; Celery's Django fix-up
    # would then set Django up (and read the database settings) as the worker starts.
    # (kombu's JSON helper imports django.utils.functional when it can: no settings.)
    script = (
        "import sys\n"
        "from gpu_inference.gpu_worker import app\n"
        "app.loader.init_worker()\n"
        "platform = ('tokenmill', 'tenants', 'workers', 'django.apps', 'django.conf', 'django.db')\n"
        "print(sorted(m for m in sys.modules if m.startswith(platform)))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}",
        "DJANGO_SETTINGS_MODULE": "tokenmill.settings",
        "DEBUG": "true",
        "TOKENMILL_VAR_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
