"""The files app's task: validate an uploaded dataset, on the default queue."""

import logging

from django.db import InterfaceError, OperationalError

from tokenmill.files import services
from tokenmill.files.models import File
from tokenmill.files.tokenizer import TokenizerUnavailable
from workers.celery import app
from workers.deliveries import BoundedDeliveriesTask, DeliveriesExhausted

logger = logging.getLogger(__name__)

# Worth another try: the database or the store was unreachable, or the tokenizer is
# still being built. Anything else is a bug, and retrying would not fix it.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, OSError, TokenizerUnavailable)


def _load(file_id: int) -> File | None:
    return File.unscoped.select_related("tenant").filter(pk=file_id).first()


class ValidateFileTask(BoundedDeliveriesTask):
    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        # Out of retries, or not retryable: say so on the file instead of leaving it pending.
        file_id = kwargs.get("file_id", args[0] if args else None)
        logger.error("validation of file %s failed for good: %r", file_id, exc)
        file = _load(file_id) if file_id is not None else None
        if file is None:
            return
        if isinstance(exc, DeliveriesExhausted):
            services.file_validation_abandoned(
                tenant=file.tenant, file=file, attempts=exc.deliveries - 1
            )
        else:
            services.file_validation_crashed(tenant=file.tenant, file=file)


@app.task(
    name="files.validate",
    base=ValidateFileTask,
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=5,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
)
def validate_file(file_id: int) -> str:
    file = _load(file_id)
    if file is None:
        return "deleted"
    return services.file_validate(tenant=file.tenant, file=file)
