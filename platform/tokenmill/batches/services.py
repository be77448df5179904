"""Writes on batches: create, cancel, and the requests of the API behind them.

The life of a batch: `validating` (every line checked, on the default queue) ->
`failed` with errors by line, or `in_progress` (run on the batch queue: run.py) ->
`finalizing` -> `completed`; or `cancelling` -> `cancelled`; or `expired` when its
window ends first. Tasks are sent by name, after the transaction commits.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tenants.errors import TenantError
from tenants.models import Organization
from tokenmill.batches.models import Batch
from tokenmill.files.models import File, StoredArtifact
from tokenmill.finetuning.params import metadata_check
from workers.celery import app

Status = Batch.Status
WINDOWS = {"24h": timedelta(hours=24)}
CREATE_FIELDS = {"input_file_id", "endpoint", "completion_window", "metadata"}
ENDPOINTS_TEXT = ", ".join(repr(endpoint) for endpoint in Batch.Endpoint.values)
TASK_VALIDATE = "batches.validate"
TASK_RUN = "batches.run"


class BatchNotFound(TenantError):
    status = 404


def parts_folder(batch_id: str) -> str:
    """Where a batch's chunks of results live in the store until the files are written."""
    return f"batches/{batch_id}"


def _required_text(data: dict, name: str) -> str:
    value = data.get(name)
    if value is None or value == "":
        raise TenantError(
            f"Missing required parameter: '{name}'.", code="missing_required_parameter", param=name
        )
    if not isinstance(value, str):
        raise TenantError(f"{name} must be a string.", code="invalid_type", param=name)
    return value


def batch_input_file(*, tenant: Organization, file_id: str) -> File:
    """The tenant's `purpose=batch` file, else the error naming input_file_id."""
    file = None
    if "\x00" not in file_id:
        file = File.objects.for_tenant(tenant).filter(public_id=file_id).first()
    if file is None:  # another tenant's file reads exactly like a missing one
        raise BatchNotFound(
            f"No file with id {file_id!r}.", code="not_found", param="input_file_id"
        )
    if file.purpose != File.Purpose.BATCH:
        raise TenantError(
            f"File {file_id} has purpose {file.purpose!r}; a batch needs purpose 'batch'.",
            code="invalid_file_purpose",
            param="input_file_id",
        )
    if file.bytes > settings.BATCH_FILE_MAX_BYTES:
        raise TenantError(
            f"File {file_id} is {file.bytes:,} bytes; a batch input file may be at most "
            f"{settings.BATCH_FILE_MAX_BYTES:,} bytes.",
            code="file_too_large",
            param="input_file_id",
        )
    return file


def batch_create(
    *,
    tenant: Organization,
    data: dict,
    api_key_id: int | None = None,
    api_key_public_id: str = "",
    user_id: int | None = None,
) -> Batch:
    """Check the request, record the batch (`validating`) and send its validation."""
    if not isinstance(data, dict):
        raise TenantError("The request body must be a JSON object.", code="invalid_json")
    unknown = sorted(set(data) - CREATE_FIELDS)
    if unknown:
        raise TenantError(
            f"Unrecognized request argument supplied: {unknown[0]}.",
            code="unknown_parameter",
            param=unknown[0],
        )
    file_id = _required_text(data, "input_file_id")
    endpoint = _required_text(data, "endpoint")
    if endpoint not in Batch.Endpoint.values:
        raise TenantError(
            f"Invalid endpoint {endpoint!r}: use {ENDPOINTS_TEXT}.",
            code="invalid_value",
            param="endpoint",
        )
    window = _required_text(data, "completion_window")
    if window not in WINDOWS:
        raise TenantError(
            f"Invalid completion_window {window!r}: only '24h' is supported.",
            code="invalid_value",
            param="completion_window",
        )
    metadata = metadata_check(data.get("metadata"))
    input_file = batch_input_file(tenant=tenant, file_id=file_id)
    now = timezone.now()
    with transaction.atomic():
        batch = Batch.objects.create(
            tenant=tenant,
            endpoint=endpoint,
            input_file=input_file,
            completion_window=window,
            created_by_key_id=api_key_id,
            created_by_key_public_id=api_key_public_id,
            created_by_user_id=user_id,
            metadata=metadata,
            created_at=now,
            expires_at=now + WINDOWS[window],
        )
        # Listed from the start, so deleting the organization deletes the batch's parts.
        StoredArtifact.objects.create(tenant=tenant, key=parts_folder(batch.public_id), bytes=0)
        transaction.on_commit(lambda: send(TASK_VALIDATE, batch.pk), robust=True)
    return batch


def send(name: str, batch_pk: int) -> None:
    # By name: the tasks module imports this one. Eager in tests, else to its queue.
    app.signature(name, args=(batch_pk,)).apply_async()


def batch_cancel(*, tenant: Organization, batch: Batch) -> Batch:
    """Stop sending new lines; the run writes the finished ones and ends `cancelled`.

    A batch still validating has sent nothing: it is cancelled at once."""
    now = timezone.now()
    rows = Batch.objects.for_tenant(tenant).filter(pk=batch.pk)
    if rows.filter(status=Status.VALIDATING).update(
        status=Status.CANCELLED, cancelling_at=now, cancelled_at=now
    ):
        return rows.get()
    if rows.filter(status=Status.IN_PROGRESS).update(status=Status.CANCELLING, cancelling_at=now):
        return rows.get()  # the run sees it before its next line (or the sweeper, run.py)
    batch.refresh_from_db()
    if batch.status in (Status.CANCELLING, Status.CANCELLED):
        return batch  # asking again changes nothing
    raise TenantError(
        f"Batch {batch.public_id} is {batch.status} and can no longer be cancelled.",
        code="invalid_state",
        param=None,
    )
