"""A liveness probe for one Celery worker: exit 0 while it consumes, 1 once it has stopped.

`manage.py worker_probe --worker default` probes the node `default@<this host>`, which
is what a Kubernetes liveness probe runs inside the worker's pod (the worker started
with `-n default@%h`). A worker whose pool is busy with long tasks is alive.
"""

import socket

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workers.probes import probe_once


class Command(BaseCommand):
    help = "Send a probe task to one worker's own queue; fail when it is not consumed in time."

    def add_arguments(self, parser):
        parser.add_argument(
            "--worker",
            required=True,
            help="the worker's node name (-n); without @host, this host is meant",
        )
        parser.add_argument("--timeout", type=float, default=settings.WORKER_PROBE_TIMEOUT)

    def handle(self, *args, worker: str, timeout: float, **options):
        from workers.celery import app

        node = worker if "@" in worker else f"{worker}@{socket.gethostname()}"
        healthy, found = probe_once(app, node, timeout=timeout)
        if not healthy:
            raise CommandError(found)
        self.stdout.write(found)
