"""Start the whole platform in one terminal: web (ASGI), workers, beat and model servers.

Ctrl-C stops everything; if one process dies, the others are stopped too, so a
half-running platform never pretends to be up.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from workers.model_servers import ModelServers


class Command(BaseCommand):
    help = "Migrate, then run web, the default and gpu workers, and beat until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--no-migrate", action="store_true")

    def handle(self, *args, host, port, no_migrate, **options):
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
        servers = ModelServers(write=self.stdout.write, root=root, var=Path(settings.VAR_DIR))
        if settings.MODEL_SERVERS:  # first: vLLM takes the longest to be ready
            servers.start()
        python = sys.executable
        celery = [python, "-m", "celery", "-A", "workers.celery"]
        var = Path(settings.VAR_DIR)
        processes = {
            "web": [
                python,
                "-m",
                "uvicorn",
                "tokenmill.asgi:application",
                "--host",
                host,
                "--port",
                str(port),
                "--no-access-log",
            ],
            # default and control share a worker; the gpu queue gets its own, one job at a time.
            "worker-default": [
                *celery,
                "worker",
                "-Q",
                "default,control",
                "-c",
                "2",
                "-n",
                "default@%h",
            ],
            "worker-gpu": [*celery, "worker", "-Q", "gpu", "-c", "1", "-n", "gpu@%h"],
            "beat": [*celery, "beat", "-l", "INFO", "-s", str(var / "celerybeat-schedule")],
        }
        children = {
            name: subprocess.Popen(cmd, cwd=root, env=env)  # noqa: S603 - our own fixed argv
            for name, cmd in processes.items()
        }
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
        exit_code = 0
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(
                        f"{name} exited with code {child.returncode}; stopping the platform."
                    )
                    exit_code, stopping = 1, True
                    break
            servers.check()
            time.sleep(0.5)
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        servers.stop()
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if exit_code:
            raise SystemExit(exit_code)
