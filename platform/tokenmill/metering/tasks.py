"""Metering tasks: thin."""

from tokenmill.metering import services
from workers.celery import app


@app.task(name="metering.aggregate", ignore_result=True, expires=60)
def aggregate() -> dict[str, int]:
    return services.metering_run()
