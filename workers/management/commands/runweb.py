"""Run the web server (ASGI: the gateway and Django) in the foreground.

The process becomes uvicorn (exec), so it is the one that receives SIGTERM from the
container runtime and drains (workers/web.py). The port and drain come from the settings.
"""

import os

from django.conf import settings
from django.core.management.base import BaseCommand

from workers.web import web_argv, web_env


class Command(BaseCommand):
    help = "Serve the ASGI app with uvicorn; SIGTERM drains streams for WEB_DRAIN_SECONDS."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container's server
        parser.add_argument("--port", type=int, default=settings.PORT)

    def handle(self, *args, host: str, port: int, **options):
        argv = web_argv(host=host, port=port)
        os.chdir(settings.BASE_DIR)
        os.execve(argv[0], argv, web_env())  # noqa: S606 - our own interpreter and argv
