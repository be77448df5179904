"""The web server's command line: uvicorn serving the ASGI app, from the settings.

One place for it, so `manage.py runweb` (a container's command) and `runplatform`
(make run) start the same server with the same drain: on SIGTERM uvicorn closes its
listening socket at once (new connections are refused, so a load balancer moves them to
another pod), lets the requests and streams in flight finish for up to
WEB_DRAIN_SECONDS, cancels what is left, and exits.
"""

import os
import sys
from pathlib import Path

from django.conf import settings

ASGI_APP = "tokenmill.asgi:application"


def web_argv(*, host: str, port: int) -> list[str]:
    argv = [sys.executable, "-m", "uvicorn", ASGI_APP, "--host", host, "--port", str(port)]
    argv += ["--timeout-graceful-shutdown", str(settings.WEB_DRAIN_SECONDS)]
    argv += ["--proxy-headers", "--forwarded-allow-ips", ",".join(settings.FORWARDED_ALLOW_IPS)]
    if settings.WEB_WORKERS > 1:
        argv += ["--workers", str(settings.WEB_WORKERS)]
    # One log line per request would cost the gateway more CPU than its own work.
    return [*argv, "--no-access-log"]


def web_env() -> dict[str, str]:
    """A fresh interpreter that finds the platform and sets its settings up as an ASGI
    server (tokenmill/asgi.py: pooled database connections), not as this command did."""
    root = Path(settings.BASE_DIR)
    path = [str(root), str(root / "platform"), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(item for item in path if item),
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tokenmill.settings"),
        "TOKENMILL_ASGI": "true",
    }
