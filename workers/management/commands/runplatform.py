"""Start the whole platform in one terminal: web (ASGI), workers, beat and model servers.

The processes are one table (`platform_children`): a name, a command and, for a
Celery worker, the node name its probe goes to. A supervisor (workers/supervisor.py)
starts each one again when it exits or, for a worker, when it stops consuming its
probe queue; a process that keeps dying stops the platform, so a half-running
platform never pretends to be up. Ctrl-C stops everything.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from workers.model_servers import ModelServers
from workers.supervisor import Child, GaveUp, Supervisor
from workers.web import web_argv


def platform_children(*, host: str, port: int) -> list[Child]:
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "workers.celery"]
    hostname = socket.gethostname()

    def worker(name: str, queues: str, concurrency: int, *, app: str = "workers.celery") -> Child:
        node = f"{name}@{hostname}"
        argv = [python, "-m", "celery", "-A", app, "worker", "-Q", queues]
        argv += ["-c", str(concurrency), "-n", node]
        return Child(f"worker-{name}", argv, worker_node=node)

    schedule = Path(settings.VAR_DIR) / "celerybeat-schedule"
    return [
        Child(
            "web",
            web_argv(host=host, port=port),
            health_url=f"http://{host}:{port}/v1/models",  # any answer, a 401 too
        ),
        # Validation and preparation; reports and the reaper have a worker of their own
        # (control), so they never wait behind a long validation.
        worker("default", "default", 2),
        worker("control", "control", 2),
        # Batch API lines: one batch at a time, BATCH_CONCURRENCY of its lines in flight.
        worker("batch", "batch", 1),
        # One training job at a time, on the GPU nodes' own app: no Django, no database.
        worker("gpu", "gpu", 1, app="gpu_inference.gpu_worker"),
        Child("beat", [*celery, "beat", "-l", "INFO", "-s", str(schedule)]),
    ]


def clear_metrics_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


class Command(BaseCommand):
    help = (
        "Migrate, then run web, the default, control, batch and gpu workers, and beat until Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--no-migrate", action="store_true")

    def handle(self, *args, host, port, no_migrate, **options):
        from workers.celery import app

        root = Path(settings.BASE_DIR)
        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
            call_command("createcachetable", verbosity=0)
            self.stdout.write("Database ready.")
        # In its own process, so this supervisor never holds torch in memory.
        subprocess.run(
            [sys.executable, "manage.py", "ensure_demo_model"], cwd=settings.BASE_DIR, check=True
        )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(root), str(root / "platform"), os.environ.get("PYTHONPATH", "")]
            ),
            "DJANGO_SETTINGS_MODULE": "tokenmill.settings",
        }
        # prometheus_client's multiprocess files belong to one run: a dead process's
        # counters would otherwise be added to this run's (their pids can come back).
        clear_metrics_folder(Path(settings.METRICS_DIR))
        servers = ModelServers(write=self.stdout.write, root=root, var=Path(settings.VAR_DIR))
        if settings.MODEL_SERVERS:  # first: vLLM takes the longest to be ready
            servers.start()
        supervisor = Supervisor(
            platform_children(host=host, port=port),
            cwd=root,
            env=env,
            app=app,
            probe_every=settings.WORKER_PROBE_SECONDS,
            probe_timeout=settings.WORKER_PROBE_TIMEOUT,
            # Long enough for the web's drain (streams in flight) and a GPU worker's hand-back.
            stop_grace=max(10.0, settings.WEB_DRAIN_SECONDS + 5.0),
            report=lambda line: self.stderr.write(line),
        )
        supervisor.start()
        url = f"http://{host}:{port}"
        self.stdout.write(
            self.style.SUCCESS(f"\nTokenmill is starting on {url}\n")
            + f"  dashboard      {url}/  (sign up there)\n"
            + f"  API            {url}/v1  (OpenAI-compatible)\n"
            + f"  API docs       {url}/api/docs/\n"
            + f"  console        {url}/console/  (manage.py createsuperuser)\n"
            + f"  an API key     {'DEBUG=true ' if settings.DEBUG else ''}"
            + ".venv/bin/python manage.py create_tenant acme --owner you@example.com\n"
            + "Press Ctrl-C to stop.\n"
        )
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                supervisor.tick()
                servers.check()
                time.sleep(0.5)
        except GaveUp as error:
            raise CommandError(str(error)) from None
        finally:
            supervisor.stop()
            servers.stop()
