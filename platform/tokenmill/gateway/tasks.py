"""Gateway tasks: thin."""

from tokenmill.gateway import health
from workers.celery import app


@app.task(name="gateway.check_replicas", ignore_result=True, expires=30)
def check_replicas() -> dict[str, int]:
    return health.replicas_check()
