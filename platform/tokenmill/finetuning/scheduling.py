"""Scheduling fine-tuning jobs: fair dispatch to GPU slots, the reaper that requeues
or fails jobs whose worker went silent, and preparation when files are validated."""

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from tenants.models import Organization
from tokenmill.files.models import File
from tokenmill.finetuning import control, job_spec, reports
from tokenmill.finetuning.models import FineTuningJob
from tokenmill.finetuning.services import attempts_made, event_add, job_requeue, mark_failed

Status = FineTuningJob.Status


def _tenant_limit(tenant: Organization) -> int:
    return tenant.max_concurrent_jobs or settings.MAX_CONCURRENT_JOBS


def _holding_slot():
    return Q(dispatched_at__isnull=False, released_at__isnull=True)


def jobs_dispatch() -> list[int]:
    """Send queued jobs to the GPU queue while GPU slots are free.

    Round-robin across tenants: each free slot goes to the tenant holding the fewest
    slots, among equals the one served longest ago (never served first), and to that
    tenant's oldest waiting job; no tenant exceeds its concurrent-job limit. So one
    tenant's sixty jobs take turns with another tenant's one.
    """
    sent: list[int] = []
    with transaction.atomic():
        # Lock the waiting jobs so two dispatchers cannot hand out the same slot.
        waiting = list(
            FineTuningJob.unscoped.select_for_update(of=("self",))
            .filter(status=Status.QUEUED, dispatched_at__isnull=True)
            .filter(tenant__status=Organization.Status.ACTIVE)  # suspended tenants' jobs wait
            .select_related("tenant")
            .order_by("created_at", "id")
        )
        if not waiting:
            return sent
        holding = dict(
            FineTuningJob.unscoped.filter(_holding_slot())
            .values_list("tenant_id")
            .annotate(n=Count("id"))
            .values_list("tenant_id", "n")
        )
        tenant_ids = {job.tenant_id for job in waiting}
        last_served = dict(
            FineTuningJob.unscoped.filter(tenant_id__in=tenant_ids, dispatched_at__isnull=False)
            .values_list("tenant_id")
            .annotate(at=Max("dispatched_at"))
            .values_list("tenant_id", "at")
        )
        never = datetime.min.replace(tzinfo=UTC)
        free = settings.GPU_WORKER_SLOTS - sum(holding.values())
        while free > 0 and waiting:
            eligible = [
                job for job in waiting if holding.get(job.tenant_id, 0) < _tenant_limit(job.tenant)
            ]
            if not eligible:
                break
            job = min(
                eligible,
                key=lambda j: (
                    holding.get(j.tenant_id, 0),
                    last_served.get(j.tenant_id, never),
                    j.created_at,
                    j.id,
                ),
            )
            waiting.remove(job)
            now = timezone.now()
            job.dispatched_at = now
            job.save(update_fields=["dispatched_at"])
            holding[job.tenant_id] = holding.get(job.tenant_id, 0) + 1
            last_served[job.tenant_id] = now
            free -= 1
            spec = job_spec.build_spec(job)
            transaction.on_commit(lambda spec=spec: control.enqueue_train(spec))
            sent.append(job.pk)
    return sent


def requeue_or_fail_lost_jobs(*, now=None) -> dict[str, int]:
    """The reaper: jobs whose worker went silent are requeued as a new attempt (a
    bounded number of times) or failed; dispatched messages nobody picked up are sent
    again, also as a new attempt, so the lost message can never run beside it."""
    now = now or timezone.now()
    silent_since = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT)
    counts = {"requeued": 0, "failed": 0, "released": 0, "redispatched": 0, "ended": 0}
    lost = FineTuningJob.unscoped.filter(_holding_slot()).filter(
        Q(status=Status.RUNNING, last_heartbeat_at__lt=silent_since)
        | Q(status=Status.CANCELLED, last_heartbeat_at__lt=silent_since)
        | Q(status=Status.CANCELLED, last_heartbeat_at__isnull=True, dispatched_at__lt=silent_since)
    )
    for job in lost:
        if _record_stored_outcome(job):
            counts["ended"] += 1
            continue
        with transaction.atomic():
            job = FineTuningJob.unscoped.select_for_update().get(pk=job.pk)
            heard_from = job.last_heartbeat_at and job.last_heartbeat_at >= silent_since
            if job.released_at is not None or heard_from:  # it spoke up since the query
                continue
            made = attempts_made(job)
            if job.status == Status.CANCELLED:
                FineTuningJob.unscoped.filter(pk=job.pk).update(released_at=now)
                counts["released"] += 1
            elif made < settings.JOB_MAX_ATTEMPTS:
                job_requeue(job)
                event_add(
                    job,
                    f"The worker running attempt {made} stopped responding; the job is "
                    f"queued again (attempt {made + 1} of {settings.JOB_MAX_ATTEMPTS}).",
                    level="warn",
                )
                counts["requeued"] += 1
            else:
                mark_failed(
                    job,
                    "worker_lost",
                    f"The worker stopped responding {made} times; the job was not retried again.",
                )
                counts["failed"] += 1
    # A message on the GPU queue that no worker started (lost with a broker or worker).
    # A job whose worker is heard from (its STARTED report is merely late behind other
    # reports) is running: any report of the current attempt sets last_heartbeat_at,
    # and a requeue clears it, so a recent one is this attempt's.
    unstarted = now - timedelta(seconds=settings.JOB_DISPATCH_TIMEOUT)
    not_heard = Q(last_heartbeat_at__isnull=True) | Q(last_heartbeat_at__lt=silent_since)
    for job in FineTuningJob.unscoped.filter(
        not_heard, status=Status.QUEUED, dispatched_at__lt=unstarted, released_at__isnull=True
    ):
        if _record_stored_outcome(job):
            counts["ended"] += 1
            continue
        with transaction.atomic():
            still_unstarted = (
                FineTuningJob.unscoped.select_for_update()
                .filter(not_heard, pk=job.pk, status=Status.QUEUED, dispatched_at__lt=unstarted)
                .first()
            )
            if still_unstarted is not None:
                job_requeue(still_unstarted)
                counts["redispatched"] += 1
    return counts


def _record_stored_outcome(job: FineTuningJob) -> bool:
    """A silent attempt may have ended with its outcome lost on the way (the broker was
    down longer than the worker kept trying): record the copy the worker left in the
    store rather than train the job again. Recording is idempotent, like any report."""
    report = control.stored_outcome(job.public_id, job.attempt)
    return report is not None and reports.record(report)


def jobs_prepare_after_validation(*, tenant: Organization, file_id: int) -> int:
    """A file's validation ended: prepare the jobs that waited for it. Returns how many."""
    waiting = list(
        FineTuningJob.objects.for_tenant(tenant)
        .filter(status=Status.VALIDATING_FILES)
        .filter(Q(training_file_id=file_id) | Q(validation_file_id=file_id))
        .values_list("pk", flat=True)
    )
    for job_pk in waiting:
        transaction.on_commit(lambda job_pk=job_pk: control.enqueue_prepare(job_pk), robust=True)
    return len(waiting)


STALLED_BATCH = 100


def _awaiting_validation() -> Q:
    """A job with a training or validation file that is still being validated."""
    return Q(training_file__status=File.Status.UPLOADED) | Q(
        validation_file__status=File.Status.UPLOADED
    )


def jobs_prepare_stalled(*, now=None) -> dict[str, int]:
    """The safety net under the validation trigger, run by the reaper.

    A job still validating JOB_PREPARE_GRACE seconds after its files were done lost its
    trigger: it is prepared again (once per grace period). A job whose files are still
    not validated after JOB_FILE_VALIDATION_TIMEOUT fails instead of waiting forever.
    Jobs still waiting for their files are left out of the batch in the query, so one
    organization's many such jobs cannot keep another's lost triggers out of it.
    """
    now = now or timezone.now()
    grace = now - timedelta(seconds=settings.JOB_PREPARE_GRACE)
    timeout = now - timedelta(seconds=settings.JOB_FILE_VALIDATION_TIMEOUT)
    counts = {"prepared_again": 0, "validation_timed_out": 0}
    timed_out = (
        FineTuningJob.unscoped.filter(status=Status.VALIDATING_FILES, created_at__lt=timeout)
        .filter(_awaiting_validation())
        .order_by("created_at")[:STALLED_BATCH]
    )
    for job in timed_out:
        mark_failed(
            job,
            "file_validation_timeout",
            f"The training files were still being validated after "
            f"{settings.JOB_FILE_VALIDATION_TIMEOUT // 60} minutes.",
        )
        counts["validation_timed_out"] += 1
    stalled = (
        FineTuningJob.unscoped.filter(status=Status.VALIDATING_FILES, created_at__lt=grace)
        .filter(Q(prepare_requested_at__isnull=True) | Q(prepare_requested_at__lt=grace))
        .exclude(_awaiting_validation())
        .order_by("created_at")
        .values_list("pk", flat=True)[:STALLED_BATCH]
    )
    for job_pk in stalled:
        claimed = (
            FineTuningJob.unscoped.filter(pk=job_pk, status=Status.VALIDATING_FILES)
            .filter(Q(prepare_requested_at__isnull=True) | Q(prepare_requested_at__lt=grace))
            .update(prepare_requested_at=now)
        )
        if claimed:
            transaction.on_commit(lambda pk=job_pk: control.enqueue_prepare(pk), robust=True)
            counts["prepared_again"] += 1
    return counts
