"""Billing tasks: thin."""

from tokenmill.billing import services
from workers.celery import app


@app.task(name="billing.sync", ignore_result=True, expires=120)
def sync() -> dict:
    return services.billing_run()
