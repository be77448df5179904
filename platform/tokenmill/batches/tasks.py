"""The batches app's tasks: validation on the default queue, the run on the batch queue."""

from django.db import InterfaceError, OperationalError

from tokenmill.batches import run
from tokenmill.batches.models import Batch
from workers.celery import app

# Worth another try: the database or the store was unreachable.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, OSError)


def _load(batch_pk: int) -> Batch | None:
    return (
        Batch.unscoped.select_related("tenant", "input_file", "created_by_key")
        .filter(pk=batch_pk)
        .first()
    )


@app.task(
    name="batches.validate",
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=5,
    retry_backoff=5,
    retry_jitter=True,
)
def validate_batch(batch_pk: int) -> str:
    batch = _load(batch_pk)
    return "deleted" if batch is None else run.batch_validate(batch=batch)


@app.task(
    name="batches.run",
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=5,
    retry_backoff=5,
    retry_jitter=True,
)
def run_batch(batch_pk: int) -> str:
    batch = _load(batch_pk)
    return "deleted" if batch is None else run.batch_run(batch=batch)


@app.task(name="batches.sweep")
def sweep_batches() -> int:
    return run.batches_sweep()
