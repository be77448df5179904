"""Tasks that belong to the fleet itself."""

import socket

from django.utils import timezone

from workers.celery import app


@app.task(name="workers.ping")
def ping() -> dict:
    """A liveness probe: answers through the real broker and result backend."""
    return {"pong": True, "host": socket.gethostname(), "at": timezone.now().isoformat()}
