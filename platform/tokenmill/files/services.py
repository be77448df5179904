"""Writes on files: upload, validate, delete.

An upload is copied from Django's temporary file into the artifact store in chunks,
then its row is inserted while the organization row is locked, so two uploads at
once cannot both squeeze under the storage quota. Any failure on the way removes
what was stored: there is never a row without its bytes, nor bytes without a row.
"""

import logging
import tempfile
from collections.abc import Iterable
from datetime import timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import RestrictedError
from django.utils import timezone

from gpu_inference.artifacts import ArtifactTooLarge
from tenants.errors import TenantError, TenantScopeError
from tenants.models import Organization
from tokenmill.files import selectors, signals, storage, tokenizer
from tokenmill.files.models import File
from tokenmill.files.storage_usage import (
    stored_artifact_forget,
    stored_artifact_measure,
    stored_artifact_record,
)
from tokenmill.files.validation import ValidationReport, validate_dataset
from tokenmill.files.validation_report import plural

logger = logging.getLogger(__name__)

# Room for the multipart boundaries, part headers and the purpose field around the file.
MULTIPART_ENVELOPE_BYTES = 64 * 1024
# What a client may upload; `batch_output` files are written by the platform only.
UPLOAD_PURPOSES = [
    purpose for purpose in File.Purpose.values if purpose != File.Purpose.BATCH_OUTPUT
]
PURPOSES = " or ".join(repr(purpose) for purpose in UPLOAD_PURPOSES)
LIST_PURPOSES = " or ".join(repr(purpose) for purpose in File.Purpose.values)
MAX_NAMED_USERS = 10
FILES_RESEND_BATCH = 500
VALIDATION_CRASHED = (
    "Validation could not run because of an error on our side; "
    "upload the file again, and contact support if it persists."
)


class FileTooLarge(TenantError):
    status = 413

    def __init__(self, message: str):
        super().__init__(message, code="file_too_large", param="file")


class FileInUse(TenantError):
    status = 409


def upload_body_limit() -> int:
    """The most bytes an upload request may carry: the file's limit plus the multipart envelope."""
    return settings.FILE_MAX_BYTES + MULTIPART_ENVELOPE_BYTES


def upload_too_large(length: int | None) -> FileTooLarge:
    """The 413 for an upload request of ``length`` bytes (None: a stream that passed the limit)."""
    size = f"{length:,} bytes" if length is not None else f"more than {upload_body_limit():,} bytes"
    return FileTooLarge(
        f"The upload is {size}; a file may be at most {settings.FILE_MAX_BYTES:,} bytes."
    )


def upload_size_check(*, content_length: str | None) -> None:
    """Refuse an upload whose request is over the limit already, before a byte of it is read."""
    try:
        length = int(content_length or 0)
    except ValueError:
        return  # the multipart parser answers a malformed Content-Length
    if length > upload_body_limit():
        raise upload_too_large(length)


def file_create(*, tenant: Organization, upload: UploadedFile | None, purpose: str | None) -> File:
    """Store an upload and record it; a fine-tune file is validated once the row is committed."""
    if upload is None:
        raise TenantError(
            "Missing required parameter: 'file'. Send the file as the multipart/form-data "
            "field 'file'.",
            code="missing_required_parameter",
            param="file",
        )
    purpose = _checked_purpose(purpose)
    if not upload.size:
        raise TenantError(f"The file {upload.name!r} is empty.", code="empty_file", param="file")
    limit = _purpose_limit(purpose)
    if purpose == File.Purpose.BATCH and upload.size > limit:
        raise FileTooLarge(
            f"The file is {upload.size:,} bytes; a {purpose!r} file may be at most {limit:,} bytes."
        )
    _quota_check(tenant, upload.size)  # unlocked, to refuse before copying when it is clear already

    needs_validation = purpose == File.Purpose.FINE_TUNE
    file = File(
        tenant=tenant,
        purpose=purpose,
        filename=upload.name or "upload",
        status=File.Status.UPLOADED if needs_validation else File.Status.PROCESSED,
        processed_at=None if needs_validation else timezone.now(),
    )
    file.storage_key = storage.original_key(file.public_id)
    store = storage.get_artifact_store()
    try:
        file.bytes, file.sha256 = store.write_stream(
            file.storage_key, upload.chunks(), max_bytes=limit
        )
    except ArtifactTooLarge:
        raise FileTooLarge(f"The file is larger than the limit of {limit:,} bytes.") from None
    try:
        with transaction.atomic():
            locked = Organization.objects.select_for_update().get(pk=tenant.pk)
            _quota_check(locked, file.bytes)
            file.save(force_insert=True)
            stored_artifact_record(
                tenant=locked, key=storage.file_folder(file.public_id), size=file.bytes
            )
    except BaseException:
        store.delete(storage.file_folder(file.public_id))
        raise
    if needs_validation:
        # The row is committed: a broker blip now must not fail the upload. It is
        # logged, and the reaper's sweep (files_validation_resend) sends it again.
        # (A lambda, not a partial: Django's log line for a failed hook names it by __qualname__.)
        transaction.on_commit(lambda: _enqueue_validation(file.pk), robust=True)
    # With eager Celery (tests) the validation has run at commit already: show its outcome.
    return File.unscoped.filter(pk=file.pk).first() or file


def _checked_purpose(purpose: str | None) -> str:
    if not purpose:
        raise TenantError(
            f"Missing required parameter: 'purpose'. Use {PURPOSES}.",
            code="missing_required_parameter",
            param="purpose",
        )
    if purpose not in UPLOAD_PURPOSES:
        raise TenantError(
            f"Invalid purpose {purpose!r}: use {PURPOSES}.", code="invalid_value", param="purpose"
        )
    return purpose


def _purpose_limit(purpose: str) -> int:
    """A batch input file has OpenAI's own limit; every file has the platform's."""
    if purpose == File.Purpose.BATCH:
        return min(settings.BATCH_FILE_MAX_BYTES, settings.FILE_MAX_BYTES)
    return settings.FILE_MAX_BYTES


def purpose_filter_check(purpose: str | None) -> str | None:
    """The `purpose` of a list request: absent, or one the platform knows."""
    if purpose and purpose not in File.Purpose.values:
        raise TenantError(
            f"Invalid purpose {purpose!r}: use {LIST_PURPOSES}.",
            code="invalid_value",
            param="purpose",
        )
    return purpose or None


def file_create_generated(
    *, tenant: Organization, purpose: str, filename: str, chunks: Iterable[bytes]
) -> File:
    """Store a file the platform wrote (a batch's output or errors), streamed from `chunks`.

    It counts in the organization's storage like an upload, but is never refused for
    the quota: the work it records is done (the next upload is refused instead).
    """
    file = File(
        tenant=tenant,
        purpose=purpose,
        filename=filename,
        status=File.Status.PROCESSED,
        processed_at=timezone.now(),
    )
    file.storage_key = storage.original_key(file.public_id)
    store = storage.get_artifact_store()
    file.bytes, file.sha256 = store.write_stream(file.storage_key, iter(chunks))
    try:
        with transaction.atomic():
            file.save(force_insert=True)
            stored_artifact_record(
                tenant=tenant, key=storage.file_folder(file.public_id), size=file.bytes
            )
    except BaseException:
        store.delete(storage.file_folder(file.public_id))
        raise
    return file


def _quota_check(tenant: Organization, size: int) -> None:
    quota = selectors.storage_quota_bytes(tenant=tenant)
    used = selectors.storage_used_bytes(tenant=tenant)
    if used + size > quota:
        raise TenantError(
            f"Storage quota exceeded: the organization stores {used:,} bytes of its "
            f"{quota:,}-byte quota, and this file is {size:,} bytes. Delete files you no "
            "longer need, or ask for a larger quota.",
            code="storage_quota_exceeded",
            param="file",
        )


def storage_room_check(*, tenant: Organization) -> None:
    """Refuse new work that will write to the store (a fine-tuning job's checkpoints and
    model) once the organization has used its whole quota."""
    quota = selectors.storage_quota_bytes(tenant=tenant)
    used = selectors.storage_used_bytes(tenant=tenant)
    if used >= quota:
        raise TenantError(
            f"Storage quota exceeded: the organization stores {used:,} bytes of its "
            f"{quota:,}-byte quota (files, checkpoints and fine-tuned models), so a job "
            "has no room for its checkpoints and model. Delete files or fine-tuned models "
            "you no longer need, or ask for a larger quota.",
            code="storage_quota_exceeded",
            param=None,
        )


def _enqueue_validation(file_pk: int) -> None:
    from tokenmill.files.tasks import validate_file  # the task module imports this one

    validate_file.delay(file_pk)


def files_validation_resend(*, now=None) -> int:
    """The reaper's sweep: a fine-tune file still `uploaded` FILE_VALIDATION_GRACE seconds
    after its upload lost its validation task (a broker blip at enqueue, a worker killed
    with the task reserved); send it again, at most once per grace period. Returns how
    many were sent. Validation is idempotent, so a slow one sent twice is harmless."""
    now = now or timezone.now()
    grace = settings.FILE_VALIDATION_GRACE
    stalled = File.unscoped.filter(
        status=File.Status.UPLOADED,
        purpose=File.Purpose.FINE_TUNE,
        created_at__lt=now - timedelta(seconds=grace),
    ).values_list("pk", flat=True)[:FILES_RESEND_BATCH]
    sent = 0
    for file_pk in stalled:
        if not cache.add(f"files:validation-resent:{file_pk}", 1, timeout=grace):
            continue  # sent again within this grace period already
        try:
            _enqueue_validation(file_pk)
        except Exception:
            cache.delete(f"files:validation-resent:{file_pk}")
            logger.exception("sending the validation of file %s again failed", file_pk)
            break  # the broker is down: the next sweep tries again
        sent += 1
    return sent


def file_delete(*, tenant: Organization, file: File) -> None:
    """Delete the row, then its bytes once the deletion is committed.

    Fine-tuning jobs point at their files with on_delete=RESTRICT; deleting a file
    a job uses is refused with a 409 that names the jobs.
    """
    if file.tenant_id != tenant.pk:
        raise TenantScopeError(f"{file.public_id} does not belong to {tenant}")
    try:
        with transaction.atomic():
            file.delete()
            stored_artifact_forget(tenant=tenant, key=storage.file_folder(file.public_id))
    except RestrictedError as error:
        raise FileInUse(
            _in_use_message(file, error.restricted_objects), code="file_in_use", param="id"
        ) from None
    store = storage.get_artifact_store()
    transaction.on_commit(partial(store.delete, storage.file_folder(file.public_id)))


def _in_use_message(file: File, users: Iterable[object]) -> str:
    ids = sorted({str(getattr(user, "public_id", user)) for user in users})
    named = ", ".join(ids[:MAX_NAMED_USERS])
    if len(ids) > MAX_NAMED_USERS:
        named += f" and {len(ids) - MAX_NAMED_USERS:,} more"
    jobs = "fine-tuning job" if len(ids) == 1 else "fine-tuning jobs"
    return f"File {file.public_id!r} cannot be deleted: it is used by {jobs} {named}."


def file_validate(*, tenant: Organization, file: File) -> str:
    """Validate a fine-tune file, record the report and the normalized file; returns the status.

    Safe to run twice (a redelivered task): only an `uploaded` file is validated,
    and only one run records its outcome.
    """
    if file.tenant_id != tenant.pk:
        raise TenantScopeError(f"{file.public_id} does not belong to {tenant}")
    if file.status != File.Status.UPLOADED:
        return file.status
    if file.purpose != File.Purpose.FINE_TUNE:
        _record_outcome(tenant, file, status=File.Status.PROCESSED)
        return File.Status.PROCESSED

    model = tokenizer.default_tokenizer_model(tenant=tenant)
    count_tokens = tokenizer.context_counter(model)
    store = storage.get_artifact_store()
    normalized_key = storage.normalized_key(file.public_id)
    # Validation reads and writes real files: a local copy of the upload in, a local
    # normalized file out, stored only when the dataset is valid.
    with (
        store.local_copy(file.storage_key) as original,
        tempfile.TemporaryDirectory(prefix="validate-") as work,
    ):
        normalized_out = Path(work) / "normalized.jsonl"
        report = validate_dataset(
            original,
            count_tokens=count_tokens,
            context_length=model.context_length,
            max_bytes=settings.FILE_MAX_BYTES,
            max_line_bytes=settings.DATASET_MAX_LINE_BYTES,
            normalized_out=normalized_out,
        )
        if report.ok:
            store.write_file(normalized_key, normalized_out)
        else:
            store.delete(normalized_key)  # one left from an earlier run cannot pass for this one
    status = File.Status.PROCESSED if report.ok else File.Status.ERROR
    recorded = _record_outcome(
        tenant,
        file,
        status=status,
        status_details="" if report.ok else validation_summary(report),
        validation=report.to_dict(),
        normalized_key=normalized_key if report.ok else "",
    )
    if recorded:  # the normalized copy counts against the quota too
        stored_artifact_measure(tenant=tenant, key=storage.file_folder(file.public_id))
    elif not File.unscoped.filter(pk=file.pk).exists():
        store.delete(storage.file_folder(file.public_id))  # deleted while it was validated
    return status


def file_validation_crashed(*, tenant: Organization, file: File) -> bool:
    """Give up on a file whose validation failed for good: it is `error`, not `uploaded` forever."""
    return _record_outcome(
        tenant, file, status=File.Status.ERROR, status_details=VALIDATION_CRASHED
    )


def file_validation_abandoned(*, tenant: Organization, file: File, attempts: int) -> bool:
    """Give up on a file whose validation kept killing its worker: `error`, saying why."""
    return _record_outcome(
        tenant,
        file,
        status=File.Status.ERROR,
        status_details=(
            f"Validation stopped: checking this file made the validation worker fail "
            f"{plural(attempts, 'time')}, so it was not tried again. Look for very long lines "
            "or examples, and contact support if it persists."
        ),
    )


def validation_summary(report: ValidationReport) -> str:
    """The first error, and how many more there are: OpenAI's `status_details`."""
    first = report.errors[0].message
    more = report.error_count - 1
    return f"{first} (and {plural(more, 'more error')})" if more else first


def _record_outcome(tenant: Organization, file: File, *, status: str, **fields: object) -> bool:
    """Move an `uploaded` file to `status`; False when another run (or a deletion) came first."""
    updated = (
        File.objects.for_tenant(tenant)
        .filter(pk=file.pk, status=File.Status.UPLOADED)
        .update(status=status, processed_at=timezone.now(), **fields)
    )
    if updated:
        transaction.on_commit(
            partial(
                signals.validation_finished.send,
                sender=File,
                tenant=tenant,
                file_id=file.pk,
                status=status,
            )
        )
    return updated == 1
