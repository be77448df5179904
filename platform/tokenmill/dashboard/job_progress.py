"""What the job page shows of a run in progress, read from the job and its metrics events.

Metrics events come in two kinds (gpu_inference.training): one per step, with
`step`, `total_steps`, `train_loss`, `tokens_per_second` and `eta_seconds`, and one
per epoch, with the validation loss (`valid_loss`) at the epoch's last step. Events
without a `kind` are step events when they have a `total_steps` or a `train_loss`.
"""

import math
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from tenants.models import Organization
from tokenmill.dashboard.charts import LossChart, LossPoint, loss_chart
from tokenmill.finetuning import selectors
from tokenmill.finetuning.models import FineTuningJob, JobEvent

STATUS_LABELS = {
    FineTuningJob.Status.VALIDATING_FILES: "Validating files",
    FineTuningJob.Status.QUEUED: "Queued",
    FineTuningJob.Status.RUNNING: "Running",
    FineTuningJob.Status.SUCCEEDED: "Succeeded",
    FineTuningJob.Status.FAILED: "Failed",
    FineTuningJob.Status.CANCELLED: "Cancelled",
}


@dataclass(frozen=True)
class JobProgress:
    status: str
    step: int | None = None
    total_steps: int | None = None
    tokens_per_second: float | None = None
    seconds_left: float | None = None
    train_loss: float | None = None
    valid_loss: float | None = None

    @property
    def percent(self) -> int | None:
        if self.status == FineTuningJob.Status.SUCCEEDED:
            return 100
        if not self.step or not self.total_steps:
            return None
        return min(100, int(100 * self.step / self.total_steps))

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)


def metrics_events(*, tenant: Organization, job: FineTuningJob) -> list[dict]:
    """The data of every metrics event of the job, oldest first."""
    rows = (
        selectors.job_events(tenant=tenant, job=job)
        .filter(type=JobEvent.Type.METRICS)
        .order_by("created_at", "id")
        .values_list("data", flat=True)
    )
    return [data for data in rows if isinstance(data, dict)]


#: the most metrics events one poll of the job page reads; it asks again for the rest
METRICS_PAGE = 2000


def _metrics_rows(*, tenant: Organization, job: FineTuningJob) -> QuerySet[JobEvent]:
    return selectors.job_events(tenant=tenant, job=job).filter(type=JobEvent.Type.METRICS)


def latest_metrics(*, tenant: Organization, job: FineTuningJob) -> list[dict]:
    """The last step report and the last validation report, oldest first: enough for
    job_progress without reading every metrics event."""
    rows = _metrics_rows(tenant=tenant, job=job).order_by("-id")
    found = [
        rows.filter(data__has_key="valid_loss").values_list("id", "data").first(),
        rows.filter(data__has_key="total_steps").values_list("id", "data").first(),
    ]
    by_id = dict(row for row in found if row)  # one report may be both
    return [by_id[pk] for pk in sorted(by_id) if isinstance(by_id[pk], dict)]


@dataclass(frozen=True)
class MetricsPage:
    points: list[dict]  # chart points, in the order the reports arrived
    cursor: str | None  # the id of the last event read: pass it as `after` next time
    more: bool  # whether more events wait after this page


def last_metrics_cursor(*, tenant: Organization, job: FineTuningJob) -> str | None:
    return (
        _metrics_rows(tenant=tenant, job=job)
        .order_by("-id")
        .values_list("public_id", flat=True)
        .first()
    )


def metric_points_after(
    *, tenant: Organization, job: FineTuningJob, after: str | None = None
) -> MetricsPage:
    """The chart points of the metrics events after the event `after` (all when None).

    The cursor follows the order events were recorded in, not their timestamps: the
    control queue records reports concurrently, so a late one may carry an earlier time.
    An unknown cursor starts from the beginning.
    """
    rows = _metrics_rows(tenant=tenant, job=job)
    if after:
        seen = rows.filter(public_id=after).values_list("id", flat=True).first()
        if seen is not None:
            rows = rows.filter(id__gt=seen)
    page = list(rows.order_by("id").values_list("public_id", "data")[: METRICS_PAGE + 1])
    more = len(page) > METRICS_PAGE
    page = page[:METRICS_PAGE]
    points = [point for _, data in page if (point := chart_point(data)) is not None]
    return MetricsPage(points=points, cursor=page[-1][0] if page else after, more=more)


def chart_point(data) -> dict | None:
    """One metrics report as the job page's script draws it (short keys: it is polled)."""
    if not isinstance(data, dict):
        return None
    step = data.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        return None
    point = {"s": step}
    for key, name in (("t", "train_loss"), ("v", "valid_loss"), ("f", "full_valid_loss")):
        value = data.get(name)
        if key == "t" and not _is_step(data):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            point[key] = value
    if isinstance(data.get("total_steps"), int):
        point["n"] = data["total_steps"]
    return point


def _is_step(data: dict) -> bool:
    if "kind" in data:
        return data["kind"] == "step"
    return "total_steps" in data or "train_loss" in data


def job_progress(
    job: FineTuningJob, metrics: list[dict], *, now: datetime | None = None
) -> JobProgress:
    steps = [data for data in metrics if _is_step(data)]
    latest = steps[-1] if steps else {}
    valid = [data["valid_loss"] for data in metrics if data.get("valid_loss") is not None]
    seconds_left = None
    if job.status == FineTuningJob.Status.RUNNING and job.estimated_finish is not None:
        seconds_left = max(0.0, (job.estimated_finish - (now or timezone.now())).total_seconds())
    return JobProgress(
        status=job.status,
        step=latest.get("step"),
        total_steps=latest.get("total_steps"),
        tokens_per_second=latest.get("tokens_per_second") if not job.is_terminal else None,
        seconds_left=seconds_left,
        train_loss=next(
            (d["train_loss"] for d in reversed(steps) if d.get("train_loss") is not None), None
        ),
        valid_loss=valid[-1] if valid else None,
    )


def job_loss_chart(metrics: list[dict]) -> LossChart:
    points = []
    for data in metrics:
        step = data.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            continue
        points.append(
            LossPoint(
                step=step,
                train_loss=data.get("train_loss") if _is_step(data) else None,
                valid_loss=data.get("valid_loss"),
                full_valid_loss=data.get("full_valid_loss"),
            )
        )
    totals = [data["total_steps"] for data in metrics if isinstance(data.get("total_steps"), int)]
    return loss_chart(points, total_steps=totals[-1] if totals else None)
