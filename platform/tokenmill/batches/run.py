"""A batch's work on the workers: validate every line, run them chunk by chunk, write
the output and error files.

Resumable: the lines are taken in chunks of BATCH_CHUNK_LINES; a chunk's results are
written to the store, then its `BatchChunk` row and the request counts are committed
together. A run that starts again (its task redelivered, or taken over by the
sweeper after its worker died) skips the chunks on record, so no finished line is
lost or written twice. One run at a time holds a batch (`run_token`, refreshed in
`heartbeat_at`); a second finds it held and leaves it.
"""

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from itertools import islice

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from tokenmill.batches import lines, runner
from tokenmill.batches.models import Batch, BatchChunk
from tokenmill.batches.services import TASK_RUN, TASK_VALIDATE, parts_folder, send
from tokenmill.files import services as file_services
from tokenmill.files.models import File
from tokenmill.files.storage import get_artifact_store
from tokenmill.files.storage_usage import stored_artifact_forget
from tokenmill.gateway.callers import batch_caller, batch_member_caller
from tokenmill.gateway.errors import GatewayError

logger = logging.getLogger(__name__)
Status = Batch.Status
RUNNING = (Status.IN_PROGRESS, Status.CANCELLING)
STOP_CHECK_SECONDS = 0.5


def _input_chunks(batch: Batch) -> Iterator[bytes]:
    return get_artifact_store().iter_chunks(batch.input_file.storage_key)


def batch_validate(*, batch: Batch) -> str:
    """Check every line; `failed` with the errors by line, or `in_progress` and run it."""
    if batch.status != Status.VALIDATING:
        return batch.status
    total, errors, failed = async_to_sync(lines.validate)(
        _input_chunks(batch), endpoint=batch.endpoint, tenant_id=batch.tenant_id
    )
    rows = Batch.unscoped.filter(pk=batch.pk, status=Status.VALIDATING)
    now = timezone.now()
    if failed:
        rows.update(status=Status.FAILED, errors=errors, failed_at=now)
        return Status.FAILED
    with transaction.atomic():
        if rows.update(status=Status.IN_PROGRESS, request_counts_total=total, in_progress_at=now):
            transaction.on_commit(lambda: send(TASK_RUN, batch.pk), robust=True)
    return Status.IN_PROGRESS


def _claim(batch: Batch) -> str | None:
    """Take the batch's lease (a token) unless a live run holds it."""
    token = uuid.uuid4().hex
    now = timezone.now()
    stale = now - timedelta(seconds=settings.BATCH_STALL_SECONDS)
    claimed = (
        Batch.unscoped.filter(pk=batch.pk, status__in=RUNNING)
        .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale) | Q(run_token=""))
        .update(run_token=token, heartbeat_at=now)
    )
    return token if claimed else None


class _StopCheck:
    """Why the run should send no more lines (cancelled, expired, lease lost), asked
    before each line and read from the database at most every STOP_CHECK_SECONDS,
    which also keeps the run's heartbeat fresh."""

    def __init__(self, batch: Batch, token: str):
        self.batch, self.token = batch, token
        self.reason: str | None = None
        self.checked = 0.0

    def __call__(self) -> str | None:
        if self.reason is None and time.monotonic() - self.checked >= STOP_CHECK_SECONDS:
            self.checked = time.monotonic()
            # The heartbeat, refreshed as lines start: its row count says the lease holds.
            rows = Batch.unscoped.filter(pk=self.batch.pk, run_token=self.token)
            row = None
            if rows.update(heartbeat_at=timezone.now()):
                row = rows.values("status", "expires_at").first()
            if row is None:
                self.reason = "lost"
            elif row["status"] == Status.CANCELLING:
                self.reason = "cancelled"
            elif row["expires_at"] <= timezone.now():
                self.reason = "expired"
        return self.reason


def _store_chunk(batch: Batch, index: int, results: list[runner.Result], token: str) -> bool:
    """Write the chunk's results, then record it with the counts; False when another
    run recorded it (or took the lease) first."""
    store = get_artifact_store()
    keys = {}
    for kind, wanted in (("output", True), ("errors", False)):
        records = [result.record for result in results if result.ok is wanted]
        # Named by the run too: a run that loses the race never overwrites the winner's.
        name = f"{index:06d}.{token[:8]}.{kind}.jsonl"
        keys[kind] = f"{parts_folder(batch.public_id)}/{name}" if records else ""
        if records:
            store.write_stream(keys[kind], iter(records))
    completed = sum(result.ok for result in results)
    failed = len(results) - completed
    try:
        with transaction.atomic():
            held = Batch.unscoped.filter(pk=batch.pk, run_token=token).update(
                request_counts_completed=F("request_counts_completed") + completed,
                request_counts_failed=F("request_counts_failed") + failed,
                heartbeat_at=timezone.now(),
            )
            if not held:
                return False
            BatchChunk.objects.create(
                tenant_id=batch.tenant_id,
                batch=batch,
                index=index,
                first_line=results[0].line.number,
                line_count=len(results),
                completed=completed,
                failed=failed,
                output_key=keys["output"],
                error_key=keys["errors"],
            )
    except IntegrityError:
        return False
    return True


def _chunks(batch: Batch) -> Iterator[tuple[int, list[lines.Line]]]:
    found = lines.lines(_input_chunks(batch), endpoint=batch.endpoint)
    index = 0
    while chunk := list(islice(found, settings.BATCH_CHUNK_LINES)):
        yield index, chunk
        index += 1


def batch_run(*, batch: Batch) -> str:
    """Send the batch's unfinished lines, then write its files."""
    if batch.status not in RUNNING:
        return batch.status
    token = _claim(batch)
    if token is None:
        return "held by another run"
    done = set(BatchChunk.unscoped.filter(batch=batch).values_list("index", flat=True))
    stop = _StopCheck(batch, token)
    for index, chunk in _chunks(batch):
        if index in done:
            continue
        if stop() is not None:
            break
        caller = _caller(batch)
        results = async_to_sync(runner.run_lines)(
            batch_id=batch.public_id,
            endpoint=batch.endpoint,
            lines=chunk,
            caller=caller,
            stopped=stop,
            run=token,
        )
        if stop.reason == "lost" or not _store_chunk(batch, index, results, token):
            return "lost the lease"
    if stop.reason == "lost":
        return "lost the lease"
    return batch_finalize(batch=batch, token=token, stopped=stop.reason)


def _caller(batch: Batch):
    if batch.created_by_user_id is not None and batch.created_by_key_id is None:
        return batch_member_caller(tenant_id=batch.tenant_id, user_id=batch.created_by_user_id)
    key = batch.created_by_key
    if key is None:
        return GatewayError(
            "The API key that created this batch has been deleted.",
            status=401,
            code="invalid_api_key",
        )
    return batch_caller(key.prefix)


def _unsent(batch: Batch, code: str, message: str) -> Iterator[bytes]:
    """Error lines for every line of the chunks no run recorded (cancelled or expired)."""
    done = set(BatchChunk.unscoped.filter(batch=batch).values_list("index", flat=True))
    for index, chunk in _chunks(batch):
        if index not in done:
            for line in chunk:
                yield runner.never_sent(batch.public_id, line, code=code, message=message).record


def _joined(keys: list[str]) -> Iterator[bytes]:
    store = get_artifact_store()
    for key in keys:
        yield from store.iter_chunks(key)


def batch_finalize(*, batch: Batch, token: str, stopped: str | None = None) -> str:
    """Join the chunks into the output and error files and end the batch."""
    batch.refresh_from_db()
    ending = {Status.CANCELLING: Status.CANCELLED}.get(batch.status, Status.COMPLETED)
    if ending == Status.COMPLETED and stopped == "expired":
        ending = Status.EXPIRED
    now = timezone.now()
    moved = Batch.unscoped.filter(pk=batch.pk, run_token=token, status__in=RUNNING)
    if ending == Status.COMPLETED and not moved.update(status=Status.FINALIZING, finalizing_at=now):
        return "lost the lease"
    chunks = list(BatchChunk.unscoped.filter(batch=batch).order_by("index"))
    output = [chunk.output_key for chunk in chunks if chunk.output_key]
    errors = [chunk.error_key for chunk in chunks if chunk.error_key]
    unsent_code = {Status.CANCELLED: "batch_cancelled", Status.EXPIRED: "batch_expired"}
    unsent = 0
    if ending in unsent_code:
        code = unsent_code[ending]
        unsent = batch.request_counts_total - sum(chunk.line_count for chunk in chunks)
    output_file = error_file = None
    if output:
        output_file = _write(batch, "output", _joined(output))
    if errors or unsent:
        extra = ()
        if unsent:
            extra = _unsent(batch, code, runner.STOPPED[code.removeprefix("batch_")])
        error_file = _write(batch, "errors", _chain(_joined(errors), extra))
    stamp = {
        Status.COMPLETED: "completed_at",
        Status.CANCELLED: "cancelled_at",
        Status.EXPIRED: "expired_at",
    }[ending]
    Batch.unscoped.filter(pk=batch.pk, run_token=token).update(
        status=ending,
        output_file=output_file,
        error_file=error_file,
        request_counts_failed=F("request_counts_failed") + unsent,
        run_token="",
        heartbeat_at=None,
        **{stamp: timezone.now()},
    )
    get_artifact_store().delete(parts_folder(batch.public_id))
    stored_artifact_forget(tenant=batch.tenant, key=parts_folder(batch.public_id))
    return ending


def _chain(*parts) -> Iterator[bytes]:
    for part in parts:
        yield from part


def _write(batch: Batch, kind: str, chunks: Iterator[bytes]) -> File:
    return file_services.file_create_generated(
        tenant=batch.tenant,
        purpose=File.Purpose.BATCH_OUTPUT,
        filename=f"{batch.public_id}_{kind}.jsonl",
        chunks=chunks,
    )


def batches_sweep() -> int:
    """Run again the batches whose run died (a stale heartbeat) or whose window ended
    while nothing ran them, and validate again those whose validation was lost;
    returns how many were sent."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.BATCH_STALL_SECONDS)
    waiting = Batch.unscoped.filter(status__in=RUNNING).filter(
        Q(heartbeat_at__lt=stale)
        | Q(heartbeat_at__isnull=True, expires_at__lte=now)
        | Q(heartbeat_at__isnull=True, status=Status.CANCELLING)
    )
    sent = 0
    for pk in waiting.values_list("pk", flat=True):
        send(TASK_RUN, pk)
        sent += 1
    # A validation whose task was lost (its worker died): validating again is harmless.
    stuck = Batch.unscoped.filter(status=Status.VALIDATING, created_at__lt=stale)
    for pk in stuck.values_list("pk", flat=True):
        send(TASK_VALIDATE, pk)
        sent += 1
    return sent
